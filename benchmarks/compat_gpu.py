"""Issue 13 on the GPU machine, natively, through envctl itself: the test artifacts plus a
GPU-traced TorchScript model and CPU and CUDA AOTInductor packages, checked with
`envctl compat run --python python3` on --device cuda and cpu, under the python and libtorch
runtimes side by side, with JUnit output; then the matrix.  Timings of each step.

    # device tool, carry [".whl"]:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/compat_gpu.py

Writes $OUT/compat-gpu.json (each step: command, exit code, seconds, JSON output) and the
matrix as text.  Needs a CUDA GPU, g++ and torch; the artifacts that exhaust memory (hog) are
left out: natively nothing bounds them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.fixtures.artifacts import BakedDevice, Plain, make_aoti_package, make_artifacts  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp/out"))
WORK = Path(os.environ.get("COMPAT_GPU_WORK", "/tmp/compat-gpu"))
ENV = {**os.environ, "ENVCTL_RECORDS": str(WORK / "records.db"), "ENVCTL_ARTIFACTS": str(WORK / "store"),
       "ENVCTL_CACHE": str(WORK / "cache"), "COLUMNS": "160"}
report: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "steps": []}


def save() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "compat-gpu.json").write_text(json.dumps(report, indent=1))


def envctl(name: str, *args: str, parse: bool = True) -> dict:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=ENV,
                          cwd=REPO, timeout=900)
    step = {"step": name, "command": "envctl " + " ".join(args), "exit": proc.returncode,
            "seconds": round(time.monotonic() - start, 2), "stderr": proc.stderr[-3000:]}
    if parse:
        try:
            step["output"] = json.loads(proc.stdout)
        except ValueError:
            step["stdout"] = proc.stdout[-6000:]
    else:
        step["stdout"] = proc.stdout[-12000:]
    report["steps"].append(step)
    save()
    print(f"{name}: exit {proc.returncode} in {step['seconds']} s", flush=True)
    return step


def timed(name: str, fn):
    start = time.monotonic()
    value = fn()
    report["steps"].append({"step": name, "seconds": round(time.monotonic() - start, 2)})
    save()
    return value


def main() -> None:
    warnings.simplefilter("ignore")
    made = WORK / "made"
    arts = {k: v for k, v in make_artifacts(made).items() if k != "hog"}
    x = torch.randn(2, 8)
    torch.manual_seed(3)
    model = BakedDevice().cuda().eval()
    traced = torch.jit.trace(model, (x.cuda(),))
    traced.save(str(made / "gpu_traced.pt"))
    torch.save((x,), made / "gpu_traced.inputs.pt")
    torch.save([traced(x.cuda()).cpu().detach()], made / "gpu_traced.outputs.pt")
    arts["gpu_traced"] = (made / "gpu_traced.pt", made / "gpu_traced.inputs.pt")
    arts["aoti_cpu"] = timed("make aoti cpu", lambda: make_aoti_package(WORK / "aoti", "cpu"))
    arts["aoti_cuda"] = timed("make aoti cuda", lambda: make_aoti_package(WORK / "aoti", "cuda"))
    torch.manual_seed(0)
    eager = Plain().cuda().eval()  # the model aoti_cuda was compiled from (make_aoti_package seeds 0)
    with torch.no_grad():
        ref = eager(torch.load(arts["aoti_cuda"][1])[0].cuda()).cpu()
    torch.save([ref], WORK / "aoti_cuda.outputs.pt")

    for name, (path, inputs) in arts.items():
        args = ["artifacts", "add", str(path), "--name", name, "--json"]
        if name == "altered":
            wrong = WORK / "wrong.pt"
            torch.save([torch.full((2, 4), 7.0)], wrong)
            args += ["--inputs", str(inputs), "--outputs", str(wrong)]
        elif name == "gpu_traced":
            args += ["--inputs", str(inputs), "--outputs", str(made / "gpu_traced.outputs.pt")]
        elif name == "aoti_cuda":
            args += ["--inputs", str(inputs), "--outputs", str(WORK / "aoti_cuda.outputs.pt")]
        elif name in ("truncated", "gpu_only"):
            args += ["--inputs", str(inputs)]
        elif inputs is not None:
            args += ["--inputs", str(inputs), "--python", "python3"]
        envctl(f"add {name}", *args)

    both = ("--runtime", "python", "--runtime", "libtorch")
    envctl("cuda: python + libtorch (loader built)", "compat", "run", "--python", "python3", "--device", "cuda",
           *both, "--junit", str(OUT / "compat-gpu-junit.xml"), "--json")
    envctl("cpu: python + libtorch (loader cached)", "compat", "run", "--python", "python3", "--device", "cpu",
           *both, "--json")
    envctl("auto: python only (one run's timing)", "compat", "run", "--python", "python3", "--json")
    matrix = envctl("matrix", "compat", "matrix", parse=False)
    (OUT / "compat-gpu-matrix.txt").write_text(matrix.get("stdout", ""))
    save()


if __name__ == "__main__":
    main()
