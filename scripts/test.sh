#!/usr/bin/env bash
# The whole test suite on a fresh machine: a venv with envctl and torch, a real Docker
# engine (installed and started when none answers), the local Debian base image, then pytest.
# Nothing is skipped silently: a step that cannot be done stops the run with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ENVCTL_VENV:-.venv}"
say() { printf 'test.sh: %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
say "installing envctl with its test extras and torch 2.13.0 (CPU) into $VENV"
"$VENV/bin/python" -m pip install -q -e '.[test]' 'torch==2.13.0'

say "bringing up the Docker engine"
bash scripts/engine-up.sh
if ! command -v docker-registry >/dev/null 2>&1; then
  say "installing Debian's docker-registry (a local registry for the --push test)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry </dev/null >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry </dev/null >/dev/null; }
fi
if ! command -v bwrap >/dev/null 2>&1; then
  say "installing Debian's bubblewrap (the sandbox of compat run --python; its fallback is tested too)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap </dev/null >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap </dev/null >/dev/null; }
fi
if ! command -v chromium >/dev/null 2>&1; then
  say "installing Debian's chromium (headless: it lays out the benchmark page to prove no label is clipped, and draws the matrix dashboard)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium </dev/null >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium </dev/null >/dev/null; }
fi
say "bringing up the one-node Slurm cluster on 127.0.0.1 (the fleet tests submit to it)"
bash scripts/slurm-up.sh
say "making the local base image (kept when it exists)"
"$VENV/bin/envctl" base
"$VENV/bin/envctl" base --tag envctl/debian:bookworm-minimal --no-toolchain

# The CUDA image test fills a fresh package cache with ~3 GB of wheels. Where this machine
# keeps local copies of PyPI files (the build machines do), fill it from them: envctl takes
# a mirror's file only when its sha256 matches the lock, and downloads the rest from PyPI.
if [ -z "${ENVCTL_MIRRORS+x}" ]; then
  mirrors=""
  for d in /opt/pypi/files /opt/pypi-more/files /opt/wheels; do
    [ -d "$d" ] && mirrors="${mirrors:+$mirrors:}$d"
  done
  export ENVCTL_MIRRORS="$mirrors"
  say "package mirrors: ${ENVCTL_MIRRORS:-none (everything from PyPI)}"
fi

# At its peak (the CUDA image: 6 GB, and as much again in the engine's build cache until its
# module prunes it) the suite used 10-11 GB above what the set-up above leaves (measured
# 2026-12-07 with df every 20 s through a whole run). A run that filled the disk ended in
# ENOSPC failures far from their cause: warn before that.
free_gb=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 {print int($4 / 1048576)}')
say "free disk: ${free_gb} GB under ${TMPDIR:-/tmp} (the suite needs about 12 GB)"
if [ "$free_gb" -lt 12 ]; then
  say "warning: under 12 GB free; 'docker builder prune -af' and removing unused images frees space"
fi

# PyTorch's own smoke_test.py is not vendored (its code stays upstream): the tests marked
# `upstream` fetch it by sha256 from a folder in ENVCTL_MIRRORS or from GitHub. Where neither
# has it, they are deselected here, and this says so.
if ! "$VENV/bin/python" - <<'PY'
import json, os, sys
from pathlib import Path
from envctl.cache import PackageCache
from envctl.errors import EnvctlError
src = json.loads(Path("tests/data/upstream/pytorch-smoke-test.json").read_text())
try:
    PackageCache().get(url=src["url"], sha256=src["sha256"], filename=src["filename"])
except EnvctlError as exc:
    print(f"test.sh: PyTorch's smoke_test.py at {src['commit'][:12]} is not at hand ({exc.message})", file=sys.stderr)
    sys.exit(1)
PY
then
  say "deselecting the tests marked 'upstream' (they run PyTorch's script); name a folder holding it in ENVCTL_MIRRORS to run them"
  export ENVCTL_DESELECT_UPSTREAM=1  # tests/conftest.py deselects them (a -m of yours still applies)
fi

say "running pytest"
exec "$VENV/bin/python" -m pytest --durations=25 "$@"  # the slowest, to keep the suite well under 30 min
