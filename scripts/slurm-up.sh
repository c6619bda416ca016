#!/usr/bin/env bash
# slurm-up.sh -- make sure a one-node Slurm cluster answers on 127.0.0.1 (the fleet tests' cluster).
#
# Idempotent: when `sinfo` already shows this host's node idle/mixed/allocated with its gpu GRES,
# it says so and exits 0. Otherwise it installs Debian's Slurm 22.05 (slurmctld, slurmd,
# slurm-client) and munge with apt when missing, writes /etc/slurm/slurm.conf and gres.conf, and
# starts munged, slurmctld and slurmd (configless: slurmd fetches its configuration from
# slurmctld). Daemons outlive this script.
#
# Choices, and why:
#   - munge, not auth/none: with auth/none the configuration never reaches a configless slurmd.
#   - a gpu GRES without device files: --gres scheduling is real (gpu:1 runs, gpu:3 is refused)
#     on a machine without GPUs; no CUDA_VISIBLE_DEVICES is set. slurmd 22.05 drops a gpu GRES
#     that has no File= from what it reports ("Removing file-less GPU" at slurmd -vvv), so a node
#     line with Gres=gpu:2 registers INVAL (0 < 2). The node line therefore declares no GRES and
#     this script sets it on the controller after the node registered (`scontrol update
#     NodeName=... Gres=gpu:2`); `scontrol reconfigure` or a slurmd restart clears it again
#     (Gres=(null), or drained), and so does a node resumed from DOWN (it re-registers INVAL):
#     a second run checks for gpu:2, not just idle, and mends such a node in a few seconds.
#   - no slurmdbd (AccountingStorageType=accounting_storage/none): sacct needs a database, so
#     envctl follows jobs with squeue, which keeps ended jobs for MinJobAge seconds.
#   - proctrack/linuxproc and no task plugin: no cgroups needed (containers, VMs).
#   - OverSubscribe=FORCE:4: the jobs run containers through the engine and mostly wait on it,
#     so four may share a CPU of these 2-core machines (an array of 4 runs side by side).
#   - KillWait=5: a cancelled or timed-out job is killed 5 s after SIGTERM, not 30.
#   - batch_sched_delay=0: a batch job is scheduled at once, not up to 3 s later (Slurm's default,
#     meant for clusters taking thousands of jobs a second; measured here: pending 0.9-2.2 s
#     before, 0.1-0.6 s after).
#
# Environment knobs (all optional):
#   SLURM_UP_LOG      log of apt and the daemons   (default /var/log/envctl-slurm)
#   SLURM_UP_TIMEOUT  seconds to wait for the node (default 60)
# Every step is reported on stderr.
set -euo pipefail

LOGDIR="${SLURM_UP_LOG:-/var/log/envctl-slurm}"
TIMEOUT="${SLURM_UP_TIMEOUT:-60}"
NODE="$(hostname -s)"
CONF=/etc/slurm/slurm.conf
export DEBIAN_FRONTEND=noninteractive

say() { printf 'slurm-up: %s\n' "$*" >&2; }
die() { printf 'slurm-up: ERROR: %s (logs in %s)\n' "$*" "$LOGDIR" >&2; exit 1; }

node_ready() {
  # State idle (or busy with jobs) and the gpu GRES registered; not down/drained.
  command -v sinfo >/dev/null 2>&1 || return 1
  local line
  line="$(timeout 10 sinfo -h -N -n "$NODE" -o '%T|%G' 2>/dev/null | head -n1)" || return 1
  case "$line" in
    idle\|gpu:2*|mixed\|gpu:2*|allocated\|gpu:2*) return 0 ;;
    *) return 1 ;;
  esac
}

# ---- 1. already up? --------------------------------------------------------
if node_ready; then
  echo "slurm-up: Slurm is up (node $NODE idle with gpu:2 on 127.0.0.1)"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root to install and start Slurm"
mkdir -p "$LOGDIR"

# ---- 2. packages -----------------------------------------------------------
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  say "installing Debian's slurmctld, slurmd, slurm-client and munge (log: $LOGDIR/apt.log)"
  # Packages' own start scripts are kept from running: this script starts the daemons itself.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  { apt-get install -y -q slurmctld slurmd slurm-client munge </dev/null \
    || { apt-get update -q && apt-get install -y -q slurmctld slurmd slurm-client munge </dev/null; }
  } >"$LOGDIR/apt.log" 2>&1 || die "apt-get install failed"
  rm -f /usr/sbin/policy-rc.d
fi

# ---- 3. configuration ------------------------------------------------------
cpus="$(nproc)"
# Slurm drains a node whose RealMemory exceeds what slurmd finds: declare 90% of it.
mem_mb="$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/munge
say "writing $CONF (node $NODE: CPUs=$cpus RealMemory=$mem_mb; its gpu:2 is set once it registers)"
cat >"$CONF.tmp" <<EOF
# Written by envctl's scripts/slurm-up.sh: a one-node cluster on 127.0.0.1 for the fleet tests.
ClusterName=envctl
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldParameters=enable_configless
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=300
KillWait=5
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
mv "$CONF.tmp" "$CONF"
printf 'Name=gpu Count=2\n' >/etc/slurm/gres.conf.tmp && mv /etc/slurm/gres.conf.tmp /etc/slurm/gres.conf

# ---- 4. daemons ------------------------------------------------------------
if ! pgrep -x munged >/dev/null; then
  if [ ! -s /etc/munge/munge.key ]; then
    say "making a munge key"
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged || die "munged did not start"
fi
if pgrep -x slurmctld >/dev/null; then
  say "slurmctld runs; reloading its configuration"
  scontrol reconfigure >/dev/null 2>&1 || true
else
  say "starting slurmctld"
  slurmctld >>"$LOGDIR/slurmctld.out" 2>&1 || die "slurmctld did not start"
fi
if ! pgrep -x slurmd >/dev/null; then
  say "starting slurmd (configless, from 127.0.0.1)"
  slurmd --conf-server 127.0.0.1 >>"$LOGDIR/slurmd.out" 2>&1 || die "slurmd did not start"
fi

# ---- 5. wait for the node, then give it its GRES ------------------------------
# Seen on these machines: the node registers with Gres=(null); a node left drained or INVAL by an
# earlier run is reloaded (`scontrol reconfigure`) and resumed; then the controller is given
# the node's gpu:2.
node_state() { timeout 10 sinfo -h -N -n "$NODE" -o '%T|%G' 2>/dev/null | head -n1; }
deadline=$(( $(date +%s) + TIMEOUT ))
said=0
until node_ready; do
  [ "$(date +%s)" -lt "$deadline" ] || die "node $NODE not idle with gpu:2 after ${TIMEOUT}s: $(sinfo -h -N -o '%N %T %G %E' 2>&1 | head -n3)"
  case "$(node_state)" in
    inval*)
      say "node $NODE registered INVAL; reloading the configuration"
      scontrol reconfigure >/dev/null 2>&1 || true ;;
    down*|drain*)
      say "resuming node $NODE"
      scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    idle\|*|mixed\|*|allocated\|*)
      [ "$said" = 1 ] || say "setting node $NODE's gpu GRES (gpu:2)"
      said=1
      scontrol update NodeName="$NODE" Gres=gpu:2 >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
echo "slurm-up: Slurm is up (node $NODE idle with gpu:2 on 127.0.0.1)"
