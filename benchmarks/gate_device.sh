#!/usr/bin/env bash
# Benchmark documents for measuring `envctl bench compare` (false-alarm and detection rates).
# Run natively on the GPU machine from the repo root (one device call per level):
#   bash benchmarks/gate_device.sh quick      # quick-A1 B1 A2 B2 A3 B3 A4 A5 A6 (interleaved)
#   bash benchmarks/gate_device.sh standard   # std-A1 std-A2 [std-B1] then quick-A7.. while time remains
#   GATE_RUNS="std-A1 std-B1" bash benchmarks/gate_device.sh standard   # just these runs, in order
# A = plain environment; B = the same with NVIDIA_TF32_OVERRIDE=0 (TF32 off in cuDNN/cuBLAS).
# Stops starting runs near its own budget (GATE_BUDGET_S, default 540 s from script start) and
# bounds each run with `timeout`, so partial results always come back. Everything is written to
# $OUT/gate-LEVEL.tar.gz (re-packed after every run) plus $OUT/runs-LEVEL.log.
set -u
LEVEL=${1:?usage: gate_device.sh quick|standard}
case "$LEVEL" in quick|standard) ;; *) echo "level must be quick or standard" >&2; exit 2;; esac
OUT=${OUT:-/tmp/gate-out}
BUDGET=${GATE_BUDGET_S:-540}
PY=${PYTHON:-python3}
W=/tmp/gate-$LEVEL
rm -rf "$W"; mkdir -p "$W" "$OUT"
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%d", b-a}'; }
SMI_Q=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw

pack() {
    cp "$W/runs.log" "$OUT/runs-$LEVEL.log" 2>/dev/null
    tar -czf "$OUT/gate-$LEVEL.tar.gz.tmp" -C /tmp "gate-$LEVEL" && mv "$OUT/gate-$LEVEL.tar.gz.tmp" "$OUT/gate-$LEVEL.tar.gz"
}

{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=$SMI_Q --format=csv; } > "$W/nvidia-smi-start.csv" 2>&1
nproc > "$W/nproc.txt"
{ uname -a; $PY --version; command -v $PY; } > "$W/host.txt" 2>&1
echo "# name level env exit_code seconds start_utc" > "$W/runs.log"
echo "# $SMI_Q (after each run)" > "$W/nvidia-smi-runs.csv"

# run NAME LEVEL ENVKIND(A|B) EST_SECONDS
run() {
    local name=$1 lvl=$2 kind=$3 est=$4 el left t1 t2 rc secs envset
    el=$(elapsed); left=$(( BUDGET - el ))
    if (( left < est )); then
        echo "skip $name: ${el}s elapsed, ${left}s left < estimate ${est}s" | tee -a "$W/skipped.txt"
        return 1
    fi
    if [ "$kind" = B ]; then envset=(env NVIDIA_TF32_OVERRIDE=0); else envset=(env -u NVIDIA_TF32_OVERRIDE); fi
    t1=$(date +%s.%N)
    printf '{"gpus": "all", "level": "%s"}\n' "$lvl" \
        | timeout -k 5 $(( left - 5 )) "${envset[@]}" $PY envctl/probes/smoke.py --config - --level "$lvl" \
            > "$W/$name.json" 2> "$W/$name.err"
    rc=$?
    t2=$(date +%s.%N)
    secs=$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.2f", b-a}')
    echo "$name $lvl $kind $rc $secs $(date -u -d @"${t1%.*}" +%H:%M:%S)" | tee -a "$W/runs.log"
    nvidia-smi --query-gpu=$SMI_Q --format=csv,noheader >> "$W/nvidia-smi-runs.csv" 2>&1
    pack
    return 0
}

if [ -n "${GATE_RUNS:-}" ]; then          # e.g. GATE_RUNS="std-A2 std-B1 quick-B4"
    for n in $GATE_RUNS; do
        case "$n" in std-*) lvl=standard est=250;; quick-*) lvl=quick est=60;; *) echo "bad run $n" >&2; continue;; esac
        k=${n#*-}; run "$n" "$lvl" "${k:0:1}" "$est" || break
    done
elif [ "$LEVEL" = quick ]; then
    for n in A1 B1 A2 B2 A3 B3 A4 A5 A6; do
        run "quick-$n" quick "${n:0:1}" 60 || break
    done
else
    run std-A1 standard A 250
    run std-A2 standard A 250
    run std-B1 standard B 250
    for i in 7 8 9 10 11 12; do
        run "quick-A$i" quick A 60 || break
    done
fi

{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=$SMI_Q --format=csv; } > "$W/nvidia-smi-end.csv" 2>&1
echo "total $(elapsed) s" >> "$W/runs.log"
pack
cat "$W/nvidia-smi-start.csv" "$W/nvidia-smi-end.csv" "$W/runs.log"
