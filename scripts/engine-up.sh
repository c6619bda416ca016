#!/usr/bin/env bash
# engine-up.sh -- make sure a real Docker engine answers on unix:///var/run/docker.sock.
#
# Idempotent: if `docker info` already works it says so and exits 0.
# Otherwise it installs Debian's engine (docker.io 20.10; dockerd lands in
# /usr/sbin) and debootstrap with apt if missing, starts dockerd detached (it outlives this script), and waits for it.
# If dockerd dies because of iptables/bridge setup (common in sandboxes/VMs),
# it retries once with --iptables=false --bridge=none (containers then only get
# network none/host).
#
# Environment knobs (all optional):
#   ENGINE_DATA_ROOT  dockerd --data-root          (default /var/lib/docker)
#   ENGINE_LOG        dockerd log file             (default /var/log/envctl-dockerd.log)
#   ENGINE_TIMEOUT    seconds to wait for the API  (default 60)
#   ENGINE_NO_NET     1 = start with --iptables=false --bridge=none right away
# Works non-interactively (CI=true, no stdin). Every step is reported on stderr.
set -euo pipefail

DATA_ROOT="${ENGINE_DATA_ROOT:-/var/lib/docker}"
LOG="${ENGINE_LOG:-/var/log/envctl-dockerd.log}"
TIMEOUT="${ENGINE_TIMEOUT:-60}"
NO_NET="${ENGINE_NO_NET:-0}"
SOCK=/var/run/docker.sock
export DOCKER_HOST="unix://${SOCK}"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'engine-up: %s\n' "$*" >&2; }
die() { printf 'engine-up: ERROR: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)); }

# Prefer whatever `docker` is on PATH (e.g. client 28.x in /usr/local/bin);
# fall back to Debian's /usr/bin/docker once docker.io is installed.
docker_cli() {
  if command -v docker >/dev/null 2>&1; then command -v docker
  elif [ -x /usr/bin/docker ]; then echo /usr/bin/docker
  else echo ""
  fi
}

server_version() {
  local cli; cli="$(docker_cli)"
  [ -n "$cli" ] || return 1
  timeout 10 "$cli" info --format '{{.ServerVersion}}' </dev/null 2>/dev/null
}

# ---- 1. already up? --------------------------------------------------------
if v="$(server_version)" && [ -n "$v" ]; then
  echo "engine-up: Docker engine is up (server ${v}) at ${DOCKER_HOST}"
  exit 0
fi
say "no engine answers at ${DOCKER_HOST}; bringing one up"
[ "$(id -u)" = 0 ] || die "must run as root to install/start dockerd"

# ---- 2. packages -----------------------------------------------------------
# Debian's docker.io ships dockerd in /usr/sbin (not /usr/bin); accept either.
find_dockerd() {
  local d
  for d in /usr/sbin/dockerd /usr/bin/dockerd "$(command -v dockerd 2>/dev/null || true)"; do
    if [ -n "$d" ] && [ -x "$d" ]; then echo "$d"; return 0; fi
  done
  return 1
}
APT_LOG=/var/log/envctl-engine-apt.log
pkgs=()
if DOCKERD="$(find_dockerd)"; then
  say "dockerd present at $DOCKERD; skipping docker.io install"
else
  pkgs+=(docker.io)
fi
if command -v debootstrap >/dev/null 2>&1; then
  say "debootstrap present at $(command -v debootstrap); skipping install"
else
  pkgs+=(debootstrap)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  t_apt=$(now_ms)
  : >"$APT_LOG"
  say "apt-get update (output: $APT_LOG)"
  if ! apt-get update -qq </dev/null >>"$APT_LOG" 2>&1; then
    tail -n 20 "$APT_LOG" >&2; die "apt-get update failed"
  fi
  say "apt-get install --no-install-recommends ${pkgs[*]} (output: $APT_LOG)"
  if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null >>"$APT_LOG" 2>&1; then
    tail -n 20 "$APT_LOG" >&2; die "apt-get install ${pkgs[*]} failed"
  fi
  say "installed ${pkgs[*]} in $(elapsed "$t_apt")"
fi
DOCKERD="$(find_dockerd)" || die "dockerd still missing after install (looked in /usr/sbin, /usr/bin, PATH)"

# ---- 3. start dockerd ------------------------------------------------------
DOCKERD_PID=""

running_dockerd_pid() {
  local p
  if [ -r /var/run/docker.pid ]; then
    p="$(cat /var/run/docker.pid 2>/dev/null || true)"
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "$p"; return 0; fi
  fi
  return 1
}

start_dockerd() {  # args: extra dockerd flags
  mkdir -p "$DATA_ROOT" "$(dirname "$LOG")" || die "cannot create $DATA_ROOT or $(dirname "$LOG")"
  {
    echo "===== $(date -Is) engine-up.sh: $DOCKERD --data-root $DATA_ROOT${*:+ $*} ====="
  } >>"$LOG"
  say "starting: $DOCKERD --data-root $DATA_ROOT${*:+ $*} (log: $LOG)"
  # setsid + nohup: own session, immune to SIGHUP, stdin closed -> outlives us.
  setsid nohup "$DOCKERD" --data-root "$DATA_ROOT" "$@" \
    </dev/null >>"$LOG" 2>&1 &
  DOCKERD_PID=$!
  say "dockerd pid $DOCKERD_PID"
}

# wait_up DEADLINE -> 0 up, 1 dockerd exited, 2 timed out
wait_up() {
  local deadline=$1 v
  while [ "$SECONDS" -lt "$deadline" ]; do
    if v="$(server_version)" && [ -n "$v" ]; then VERSION="$v"; return 0; fi
    if [ -n "$DOCKERD_PID" ] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then return 1; fi
    sleep 0.5
  done
  return 2
}

fail() {
  say "last 20 lines of $LOG:"
  tail -n 20 "$LOG" >&2 || true
  die "$1"
}

VERSION=""
NET_NOTE=""
t_start=$(now_ms)
deadline=$((SECONDS + TIMEOUT))

if p="$(running_dockerd_pid)"; then
  say "dockerd already running (pid $p) but not answering yet; waiting for it, not starting another"
  DOCKERD_PID="$p"
elif [ "$NO_NET" = 1 ]; then
  start_dockerd --iptables=false --bridge=none
  NET_NOTE=" (--iptables=false --bridge=none: ENGINE_NO_NET=1; containers get network none/host only)"
else
  start_dockerd
fi

set +e; wait_up "$deadline"; rc=$?; set -e
if [ "$rc" = 1 ] && [ -z "$NET_NOTE" ]; then
  # dockerd died: retry without iptables/bridge if that is why.
  if tail -n 60 "$LOG" | grep -qiE 'iptables|ip6tables|bridge|docker0|nat chain|netfilter'; then
    say "dockerd exited during iptables/bridge setup; retrying with --iptables=false --bridge=none"
    rm -f /var/run/docker.pid
    start_dockerd --iptables=false --bridge=none
    NET_NOTE=" (started with --iptables=false --bridge=none: iptables/bridge unavailable; containers get network none/host only)"
    set +e; wait_up "$deadline"; rc=$?; set -e
  fi
fi

case "$rc" in
  0) echo "engine-up: Docker engine is up (server ${VERSION}) after $(elapsed "$t_start")${NET_NOTE}" ;;
  1) fail "dockerd (pid $DOCKERD_PID) exited before the API answered; see $LOG" ;;
  *) fail "dockerd did not answer at ${DOCKER_HOST} within ${TIMEOUT}s (pid ${DOCKERD_PID:-?} left running); see $LOG" ;;
esac
