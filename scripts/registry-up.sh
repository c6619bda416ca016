#!/usr/bin/env bash
# registry-up.sh -- make sure an OCI registry answers on 127.0.0.1:PORT; print its address.
#
# Debian's docker-registry (CNCF distribution 2.8), installed with apt if missing, serving
# from a filesystem root.  Idempotent: a registry already answering /v2/ on the port is kept.
# The Debian engine treats 127.0.0.0/8 as an insecure registry, so nothing else is set up.
#
#   scripts/registry-up.sh [PORT]
#
# Environment knobs (all optional):
#   ENVCTL_REGISTRY_PORT  the port when none is given    (default 5000)
#   ENVCTL_REGISTRY_ROOT  storage root, config, log, pid (default /var/lib/envctl-registry/PORT)
#   REGISTRY_TIMEOUT      seconds to wait for /v2/       (default 30)
# stdout: the address (127.0.0.1:PORT), nothing else; every step is reported on stderr.
set -euo pipefail

PORT="${1:-${ENVCTL_REGISTRY_PORT:-5000}}"
ROOT="${ENVCTL_REGISTRY_ROOT:-/var/lib/envctl-registry/${PORT}}"
TIMEOUT="${REGISTRY_TIMEOUT:-30}"
ADDR="127.0.0.1:${PORT}"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'registry-up: %s\n' "$*" >&2; }
die() { printf 'registry-up: ERROR: %s\n' "$*" >&2; exit 1; }
answers() { curl -fsS -o /dev/null --max-time 2 "http://${ADDR}/v2/" 2>/dev/null; }

case "$PORT" in ''|*[!0-9]*) die "port '${PORT}' is not a number (give PORT or ENVCTL_REGISTRY_PORT)";; esac
command -v curl >/dev/null 2>&1 || die "curl is needed to check the registry (apt-get install curl)"

if answers; then
  say "a registry already answers on ${ADDR}"
  echo "$ADDR"
  exit 0
fi

if ! command -v docker-registry >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "docker-registry is not installed and installing it needs root"
  say "installing Debian's docker-registry"
  apt-get install -y -qq --no-install-recommends docker-registry </dev/null >/dev/null 2>&1 \
    || { apt-get update -qq </dev/null >/dev/null 2>&1 \
         && apt-get install -y -qq --no-install-recommends docker-registry </dev/null >/dev/null; } \
    || die "apt-get install docker-registry failed"
fi

mkdir -p "${ROOT}/store"
cat >"${ROOT}/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${ROOT}/store
  delete:
    enabled: true
http:
  addr: ${ADDR}
CONFIG

# setsid + nohup: its own session, immune to SIGHUP, so it outlives this script.
setsid nohup docker-registry serve "${ROOT}/config.yml" </dev/null >>"${ROOT}/registry.log" 2>&1 &
pid=$!
echo "$pid" >"${ROOT}/registry.pid"
say "docker-registry pid ${pid}, root ${ROOT} (log: ${ROOT}/registry.log)"

deadline=$((SECONDS + TIMEOUT))
until answers; do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "${ROOT}/registry.log" >&2 || true
    die "docker-registry exited before answering on ${ADDR} (port taken?); see ${ROOT}/registry.log"
  fi
  [ "$SECONDS" -lt "$deadline" ] || die "docker-registry (pid ${pid}) did not answer on ${ADDR} within ${TIMEOUT}s"
  sleep 0.2
done
say "registry is up on ${ADDR}"
echo "$ADDR"
