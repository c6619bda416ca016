#!/usr/bin/env bash
# One device call (run natively on the GPU machine, envctl's dependency wheels in .whl/): is the
# python-runtime SIGSEGV of a CUDA AOTInductor package torch's, or the harness's (envctl's wheels on
# PYTHONPATH)?  Writes $OUT/aoti-*; the H100's results are in benchmarks/results/aoti-h100/.
set -u
mkdir -p /tmp/a "$OUT"
start=$(date +%s)
python3 - <<'PY' > "$OUT/aoti-make.txt" 2>&1
import sys, json, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, ".")
from pathlib import Path
t = time.monotonic()
from tests.fixtures.artifacts import make_aoti_package
p, i = make_aoti_package(Path("/tmp/a"), "cuda")
print("compiled", p, round(time.monotonic() - t, 1))
json.dump([{"id": "aoti_cuda", "kind": "aoti", "artifact": str(p), "inputs": str(i), "outputs": None,
            "compiled_for": "cuda"}], open("/tmp/a/m.json", "w"))
PY
echo "make: $(( $(date +%s) - start )) s" >> "$OUT/aoti-make.txt"
timeout 110 python3 envctl/probes/compat_runner.py --manifest /tmp/a/m.json --timeout 100 --device cuda \
  --runtime python > "$OUT/aoti-plain.json" 2> "$OUT/aoti-plain.err"
echo "plain: $(( $(date +%s) - start )) s" >> "$OUT/aoti-make.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
PYTHONPATH=/tmp/site timeout 110 python3 envctl/probes/compat_runner.py --manifest /tmp/a/m.json --timeout 100 \
  --device cuda --runtime python > "$OUT/aoti-site.json" 2> "$OUT/aoti-site.err"
echo "site: $(( $(date +%s) - start )) s" >> "$OUT/aoti-make.txt"
