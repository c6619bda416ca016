# Run natively on the H100 (device tool) with the probes copied beside it: python3 gpu13.py; output: compat-gpu-h100.json
"""Issue 13 on the GPU machine, natively: device cuda vs cpu, a CUDA AOTInductor package,
the libtorch runtime, timings of one compat run of all test artifacts.  Writes $OUT/gpu13.json."""
import json, os, subprocess, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("OUT", "/tmp/out"))
OUT.mkdir(parents=True, exist_ok=True)
sys.path.insert(0, str(HERE))
import torch
from artifacts import make_artifacts, make_aoti_package, Plain, Branchy
W = Path("/tmp/gpu13"); W.mkdir(exist_ok=True)
report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "steps": {}}
def save():
    (OUT / "gpu13.json").write_text(json.dumps(report, indent=1))
def step(name, fn):
    t = time.monotonic()
    try:
        report["steps"][name] = {"result": fn(), "seconds": round(time.monotonic() - t, 2)}
    except Exception as exc:
        report["steps"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:1500]}", "seconds": round(time.monotonic() - t, 2)}
    save(); print(name, json.dumps(report["steps"][name])[:600], flush=True)
RUN = str(HERE / "compat_runner.py")
arts = make_artifacts(W / "made")
x = torch.randn(2, 8)
torch.manual_seed(1)
gpu_traced = torch.jit.trace(Plain().cuda().eval(), (x.cuda(),))  # device baked into the graph
gpu_traced.save(str(W / "gpu_traced.pt")); torch.save((x,), W / "gpu_traced.inputs.pt")
torch.save([gpu_traced(x.cuda()).cpu().detach()], W / "gpu_traced.out.pt")
entries = []
def ref(kind, p, i):
    o = str(p) + ".ref.pt"
    r = subprocess.run([sys.executable, RUN, "--reference", kind, str(p), str(i), o], capture_output=True, text=True)
    return o if r.returncode == 0 else None
for name, (p, i) in arts.items():
    if name in ("hog",):
        continue
    kind = "export" if str(p).endswith(".pt2") else "torchscript"
    out = ref(kind, p, i) if i and name not in ("truncated", "gpu_only") else None
    entries.append({"id": name, "kind": kind, "artifact": str(p), "inputs": str(i) if i else None, "outputs": out})
entries.append({"id": "gpu_traced", "kind": "torchscript", "artifact": str(W / "gpu_traced.pt"),
                "inputs": str(W / "gpu_traced.inputs.pt"), "outputs": str(W / "gpu_traced.out.pt")})
(W / "m.json").write_text(json.dumps(entries))
def compat(device, runtime="python", manifest=W / "m.json", extra=()):
    t = time.monotonic()
    r = subprocess.run([sys.executable, RUN, "--manifest", str(manifest), "--device", device, "--runtime", runtime, *extra],
                       capture_output=True, text=True, timeout=200)
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    doc["wall_s"] = round(time.monotonic() - t, 2)
    for res in doc.get("results", []):
        res.pop("message", None) if res.get("status") == "ok" else res.update(message=res.get("message", "")[:600])
    return doc
step("python_cuda", lambda: compat("cuda"))
step("python_cpu", lambda: compat("cpu"))
step("python_auto", lambda: {k: v for k, v in compat("auto").items() if k != "results"})
aoti_entry = {}
def make_cuda_aoti():
    t = time.monotonic()
    p, i = make_aoti_package(W / "aoti", "cuda")
    o = ref("aoti", p, i)  # reference from the CUDA package through the reference path (device cpu inputs)
    import zipfile
    meta = [json.loads(zipfile.ZipFile(p).read(n)) for n in zipfile.ZipFile(p).namelist() if n.endswith("wrapper_metadata.json")]
    aoti_entry.update({"id": "aoti_cuda", "kind": "aoti", "artifact": str(p), "inputs": str(i),
                       "outputs": str(W / "exported_ref.pt")})
    # reference: the eager model's outputs on the GPU
    torch.manual_seed(0); m = Plain().cuda().eval(); xx = torch.load(i)[0].cuda()
    torch.save([m(xx).cpu().detach()], W / "exported_ref.pt")
    (W / "a.json").write_text(json.dumps([aoti_entry]))
    return {"compile_s": round(time.monotonic() - t, 1), "metadata": meta, "reference_via_runner_on_cpu": o is not None}
step("aoti_cuda_make", make_cuda_aoti)
step("aoti_cuda_python_cuda", lambda: compat("cuda", manifest=W / "a.json"))
step("aoti_cuda_python_cpu", lambda: compat("cpu", manifest=W / "a.json"))
def build():
    r = subprocess.run([sys.executable, RUN, "--build-loader", str(HERE / "compat_loader.cpp"), str(W / "loader")],
                       capture_output=True, text=True, timeout=240)
    return json.loads(r.stdout.strip().splitlines()[-1])
step("loader_build", build)
if (W / "loader").exists():
    both = json.loads((W / "m.json").read_text()) + ([aoti_entry] if aoti_entry else [])
    (W / "all.json").write_text(json.dumps(both))
    step("libtorch_cuda", lambda: compat("cuda", "libtorch", W / "all.json", ("--loader", str(W / "loader"))))
    step("libtorch_cpu", lambda: compat("cpu", "libtorch", W / "all.json", ("--loader", str(W / "loader"))))
save()
