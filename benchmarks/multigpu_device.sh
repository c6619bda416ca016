#!/usr/bin/env bash
# The probe's multi-GPU checks (issue #28) on a lent machine, natively from the repo root:
#   bash benchmarks/multigpu_device.sh            # every GPU, then one GPU (the clean skip)
# Runs envctl/probes/smoke.py --checks-only (standard library and torch only; the multi-GPU checks
# run under --checks-only too) with {"gpus": "all", "level": "standard"}: the exact-sum
# all-reduce, busbw at 256 MiB and 1 GiB, the p2p matrix and NCCL's transport. Then the same with
# CUDA_VISIBLE_DEVICES=0 (one GPU: every multi-GPU check skipped with the reason), then through
# envctl itself (envctl smoke --checks-only --gpus all --json: its default quick level, 256 MiB)
# when ENVCTL_PYTHON (default: the probed python) has envctl's dependencies. Writes to $OUT:
#   multigpu-all.json / .err, nccl-all.log (NCCL's INFO lines), multigpu-one.json / .err,
#   envctl-smoke-all.json / .err, nvidia-smi.txt, topo.txt (nvidia-smi topo -m), runs.log
set -u
OUT=${OUT:-/tmp/multigpu-out}
PY=${PYTHON:-python3}
ENVCTL_PY=${ENVCTL_PYTHON:-$PY}
mkdir -p "$OUT"
{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id --format=csv; } \
    > "$OUT/nvidia-smi.txt" 2>&1
nvidia-smi topo -m > "$OUT/topo.txt" 2>&1
{ uname -a; $PY --version; nproc; df -h /dev/shm; } > "$OUT/host.txt" 2>&1
echo "# name exit_code seconds" > "$OUT/runs.log"

summary() {  # the multi-GPU checks of a probe document, one line each
    $PY - "$1" <<'EOF'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except ValueError as exc:
    sys.exit(f"  not JSON: {exc}")
for c in doc.get("checks", []):
    if c["name"].startswith("multi-gpu") or c["name"] == "nccl":
        print(f"  {c['status']:5} {c['name']}: {c['message']}")
mg = doc.get("multi_gpu") or {}
for row in mg.get("bandwidth") or []:
    print(f"  {row['size_mib']:>5} MiB  time {row['time_s'] * 1e3:.3f} ms  algbw {row['algbw_gbs']} GB/s"
          f"  busbw {row['busbw_gbs']} GB/s")
EOF
}

probe() {  # NAME CONFIG [VAR=VALUE...]
    local name=$1 cfg=$2 t1 rc
    shift 2
    t1=$(date +%s)
    echo "$cfg" | timeout -k 5 420 env "$@" $PY envctl/probes/smoke.py --config - --checks-only --indent 1 \
        > "$OUT/$name.json" 2> "$OUT/$name.err"
    rc=$?
    echo "$name $rc $(( $(date +%s) - t1 ))" | tee -a "$OUT/runs.log"
    summary "$OUT/$name.json"
}

probe multigpu-all '{"gpus": "all", "level": "standard"}'
grep "NCCL" "$OUT/multigpu-all.err" > "$OUT/nccl-all.log"
echo "  NCCL lines: $(wc -l < "$OUT/nccl-all.log")"
probe multigpu-one '{"gpus": "all", "level": "standard"}' CUDA_VISIBLE_DEVICES=0

if PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} $ENVCTL_PY -m envctl --help > /dev/null 2>&1; then
    t1=$(date +%s)
    PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} timeout -k 5 420 $ENVCTL_PY -m envctl smoke --python "$PY" --checks-only --gpus all --json \
        > "$OUT/envctl-smoke-all.json" 2> "$OUT/envctl-smoke-all.err"
    echo "envctl-smoke-all $? $(( $(date +%s) - t1 ))" | tee -a "$OUT/runs.log"
    summary "$OUT/envctl-smoke-all.json"
else
    echo "envctl-smoke-all skipped: $ENVCTL_PY lacks envctl's dependencies (set ENVCTL_PYTHON)" | tee -a "$OUT/runs.log"
fi
cat "$OUT/nvidia-smi.txt"
