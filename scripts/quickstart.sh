#!/usr/bin/env bash
# The main job on a fresh machine: install envctl into a venv, start the Docker engine and
# make the local Debian base when needed, then lock-check, build and verify pytorch-2.13-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ENVCTL_VENV:-.venv}"
IMAGE="${1:-pytorch-2.13-cpu}"
say() { printf 'quickstart: %s\n' "$*" >&2; }

[ -x "$VENV/bin/python" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
say "installing envctl into $VENV"
"$VENV/bin/python" -m pip install -q -e .
export PATH="$PWD/$VENV/bin:$PATH"

envctl catalog
bash scripts/engine-up.sh
envctl base
envctl lock --check "$IMAGE"
envctl build "$IMAGE"
envctl verify "$IMAGE"
