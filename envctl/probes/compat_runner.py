"""envctl compat runner: load and run model artifacts, each in its own child process.

Runs inside an image (or any Python with torch), standard library and torch only:

    python compat_runner.py --manifest MANIFEST.json [--timeout S] [--device auto|cpu|cuda]
                            [--runtime python|libtorch --loader PATH]
    python compat_runner.py --reference KIND ARTIFACT INPUTS OUTPUTS   (write reference outputs)
    python compat_runner.py --build-loader SOURCE OUTPUT               (compile the libtorch loader)

The manifest lists {id, kind: torchscript|export|aoti, artifact, inputs, outputs, compiled_for}.
Under the python runtime every artifact is loaded in a forked child (an AOTInductor package in a
fresh process); under libtorch in its own process of
the C++ loader (compat_loader.cpp, built against this torch).  A crash (even a segfault or an OOM
kill) or a hang hides nothing else.  CUDA is never touched in this parent (a forked child cannot
use a CUDA context its parent made): the device is resolved in a child too.  Prints one JSON
object on stdout: {"schema": "envctl.compat/1", "torch", "device", "runtime", "results": [{id,
status, detail, message, ...}]}; status is ok, load-error, run-error, mismatch, crash, timeout or
unsupported; detail is the one line that says what went wrong, message the whole text.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SCHEMA = "envctl.compat/1"
# Allowed max |out - ref| / max(|ref|, 1) per dtype.
TOLERANCE = {"float64": 1e-9, "float32": 1e-5, "float16": 1e-2, "bfloat16": 2e-2}
MAX_MESSAGE = 20000
_ERROR_LINE = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b:?")
LOADER_EXIT = {3: "load-error", 4: "run-error", 5: "run-error", 6: "unsupported"}


def summary(message):
    """The first line that says what went wrong.  A TorchScript interpreter error starts with
    "The following operation failed..." and an op trace; what failed is the error line after it."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if any("TorchScript interpreter" in line or line.startswith("Traceback of TorchScript") for line in lines):
        for line in lines[1:]:
            if _ERROR_LINE.match(line):
                return line[:300]
    for line in lines:
        if not line.startswith(("Traceback", "File ", "from ")):
            return line[:300]
    return lines[0][:300]


def _failure(status, exc, prefix=""):
    message = prefix + f"{type(exc).__name__}: {str(exc).strip() or type(exc).__name__}"
    return {"status": status, "detail": summary(message), "message": message[:MAX_MESSAGE]}


def _flatten(value):
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _flatten(value[k])]
    return []


def _moved(value, device):
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_moved(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    return value


def _load(kind, path, device):
    import torch

    if kind == "export":
        return torch.export.load(path).module().to(device)
    if kind == "aoti":
        return torch._inductor.aoti_load_package(path)
    return torch.jit.load(path, map_location=device)


def _call(model, inputs):
    import torch

    with torch.no_grad():
        if isinstance(inputs, dict):
            return model(**inputs)
        if isinstance(inputs, (list, tuple)):
            return model(*inputs)
        return model(inputs)


def compare(got, outputs_path):
    """Flat outputs against the reference file: the same rule for every runtime."""
    import torch

    if not outputs_path:
        return {"status": "ok", "detail": "ran (no reference outputs to compare)"}
    try:  # a bare tensor, a list or a dict of tensors: compared as the same flat list as the outputs
        want = _flatten(torch.load(outputs_path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001
        return _failure("run-error", exc, "cannot read reference outputs: ")
    if len(got) != len(want):
        return {"status": "mismatch", "detail": f"{len(got)} outputs, reference has {len(want)}"}
    worst_abs = worst_rel = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape or g.dtype != w.dtype:
            return {"status": "mismatch", "detail": f"output {tuple(g.shape)} {g.dtype}, reference "
                                                    f"{tuple(w.shape)} {w.dtype}"}
        if not g.is_floating_point():
            if not torch.equal(g, w):
                return {"status": "mismatch", "detail": "integer outputs differ"}
            continue
        g64, w64 = g.double(), w.double()
        if torch.isnan(g64).any() and not torch.isnan(w64).any():
            return {"status": "mismatch", "detail": "NaN in outputs"}
        diff = (g64 - w64).abs()
        abs_err = float(diff.max()) if diff.numel() else 0.0
        rel_err = abs_err / max(float(w64.abs().max()) if w64.numel() else 0.0, 1.0)
        worst_abs, worst_rel = max(worst_abs, abs_err), max(worst_rel, rel_err)
        tol = TOLERANCE.get(str(g.dtype).replace("torch.", ""), 1e-5)
        if rel_err > tol:
            return {"status": "mismatch", "detail": f"max abs error {abs_err:.3g}, rel {rel_err:.3g} "
                                                    f"(tolerance {tol:g} for {g.dtype})",
                    "max_abs": abs_err, "max_rel": rel_err}
    return {"status": "ok", "detail": f"{len(got)} outputs within tolerance", "max_abs": worst_abs,
            "max_rel": worst_rel}


def child(kind, artifact, inputs_path, outputs_path, write_outputs=False, device="cpu"):
    """One artifact: load, run, compare. Returns one result; never raises."""
    import warnings

    warnings.simplefilter("ignore")
    import torch

    try:
        model = _load(kind, artifact, device)
    except Exception as exc:  # noqa: BLE001 - every load failure is a result
        return _failure("load-error", exc)
    if not inputs_path:
        return {"status": "ok", "detail": "loaded (no sample inputs to run)"}
    try:
        inputs = _moved(torch.load(inputs_path, map_location="cpu", weights_only=True), device)
    except Exception as exc:  # noqa: BLE001
        return _failure("run-error", exc, "cannot read sample inputs: ")
    try:
        got = [t.detach().cpu() for t in _flatten(_call(model, inputs))]
    except Exception as exc:  # noqa: BLE001
        return _failure("run-error", exc)
    if write_outputs:
        torch.save(got, outputs_path)
        return {"status": "ok", "detail": f"wrote {len(got)} reference outputs"}
    return compare(got, outputs_path)


def forked(fn, timeout):
    """fn() in a forked child (torch is imported once in the parent, so a child starts in
    milliseconds); a crash or hang ends only that child.  Returns its result dict."""
    import select

    start = time.monotonic()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - report, never propagate out of the fork
            result = _failure("crash", exc, "runner error: ")
        with os.fdopen(write_fd, "w") as fh:
            fh.write(json.dumps(result))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        while True:  # read() returns everything up to EOF, which comes when the child exits
            left = start + timeout - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"status": "timeout", "detail": f"no answer within {timeout:g}s"}
            if select.select([fh], [], [], min(left, 0.5))[0]:
                text = fh.read().strip()
                break
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return _signalled(os.WTERMSIG(status))
    if not text:
        return {"status": "crash", "detail": f"exited with code {os.WEXITSTATUS(status)} and no result"}
    return json.loads(text)


def aoti(entry, device, timeout):
    """An AOTInductor package: refused on a device it was not compiled for (its archive says which;
    loading a CUDA package without CUDA can crash), else run in a fresh process: the package's
    compiled library and the CUDA runtime it starts do not survive a fork (SIGSEGV on the H100)."""
    made_for = entry.get("compiled_for")
    if made_for and made_for != device:
        return {"status": "unsupported",
                "detail": f"an AOTInductor package compiled for {made_for} cannot run on {device}",
                "message": f"the package's AOTI_DEVICE_KEY is {made_for}; the target runs {device}: "
                           f"compile it again for {device} (torch._inductor.aoti_compile_and_package)"}
    try:
        proc = subprocess.run([sys.executable, "-X", "faulthandler", os.path.abspath(__file__), "--one",
                               json.dumps(entry), device], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "detail": f"no answer within {timeout:g}s"}
    lines = proc.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        try:
            return json.loads(lines[-1])  # the verdict came before any crash at exit
        except ValueError:
            pass
    if proc.returncode < 0:
        res = _signalled(-proc.returncode)
        frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', proc.stderr)
        if frames:  # faulthandler's dump, innermost first: where in Python it died
            path, line, func = frames[0]
            res["detail"] += f" (in {func}, {os.path.basename(path)}:{line})"
            res["message"] = proc.stderr[-MAX_MESSAGE:]
        return res
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    return {"status": "crash", "detail": f"exited with code {proc.returncode} and no result: {tail}"}


def _signalled(number):
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    hint = " (out of memory?)" if name == "SIGKILL" else ""
    return {"status": "crash", "detail": f"killed by {name}{hint} during load or run"}


class CppLoader:
    """The C++ loader serving requests (libtorch is loaded once; it forks one child per artifact,
    with the timeout); restarted when it dies.  Its outputs are compared here."""

    def __init__(self, path):
        self.path, self.proc = path, None

    def _answer(self, line, timeout):
        import select

        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([self.path, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, bufsize=1)
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            if select.select([self.proc.stdout], [], [], timeout + 30)[0]:
                answer = self.proc.stdout.readline().strip()
                if answer:
                    return answer
        except OSError:
            pass
        self.close()
        return "lost"

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def check(self, entry, timeout, device):
        import torch

        with tempfile.TemporaryDirectory(prefix="envctl-cpp-") as tmp:
            out, err = os.path.join(tmp, "outputs.pt"), os.path.join(tmp, "error.txt")
            fields = [str(timeout), entry["kind"], entry["artifact"], entry.get("inputs") or "-", out, device, err]
            answer = self._answer("\t".join(fields), timeout)
            if answer == "timeout":
                return {"status": "timeout", "detail": f"no answer within {timeout:g}s"}
            if answer.startswith("signal "):
                return _signalled(int(answer.split()[1]))
            code = int(answer.split()[1]) if answer.startswith("exit ") else None
            if code in LOADER_EXIT:
                with open(err, errors="replace") as fh:
                    message = fh.read()[:MAX_MESSAGE]
                return {"status": LOADER_EXIT[code], "detail": summary(message), "message": message}
            if code != 0:
                return {"status": "crash", "detail": f"the C++ loader gave no result ({answer or 'no answer'})"}
            if not entry.get("inputs"):
                return {"status": "ok", "detail": "loaded (no sample inputs to run)"}
            try:
                got = _flatten(torch.load(out, map_location="cpu", weights_only=True))
            except Exception as exc:  # noqa: BLE001
                return _failure("run-error", exc, "cannot read the loader's outputs: ")
            return compare(got, entry.get("outputs"))


def resolve_device(requested):
    """auto -> cuda when this torch sees a GPU, else cpu; asked in a child (CUDA stays out of here)."""
    if requested == "cpu":
        return "cpu", None

    def probe():
        import torch

        if torch.cuda.is_available():
            return {"status": "ok", "detail": torch.cuda.get_device_name(0)}
        return {"status": "none", "detail": f"torch {torch.__version__} sees no CUDA GPU"}

    seen = forked(probe, 120)
    if seen.get("status") == "ok":
        return "cuda", seen["detail"]
    if requested == "cuda":
        raise RuntimeError(f"--device cuda: {seen.get('detail')}")
    return "cpu", None


def build_loader(source, output):
    """Compile compat_loader.cpp against this interpreter's torch (headers and libraries in the wheel)."""
    import torch
    import torch.utils

    root = os.path.dirname(torch.__file__)
    inc, lib = os.path.join(root, "include"), os.path.join(root, "lib")
    libs = ["torch", "torch_cpu", "c10"] + [n for n in ("torch_cuda", "c10_cuda")
                                            if os.path.exists(os.path.join(lib, f"lib{n}.so"))]
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    command = [os.environ.get("CXX", "g++"), "-O1", "-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
               "-I", inc, "-I", os.path.join(inc, "torch", "csrc", "api", "include"), source, "-o", output,
               "-L", lib, f"-Wl,-rpath,{lib}", "-Wl,--no-as-needed"] + [f"-l{n}" for n in libs] + ["-Wl,--as-needed"]
    start = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True)
    except OSError as exc:
        return {"ok": False, "error": f"cannot run {command[0]}: {exc.strerror}"}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines()[-3:]
        return {"ok": False, "error": f"{command[0]} failed (exit {proc.returncode}): {' | '.join(lines[:3])[:600]}"}
    return {"ok": True, "seconds": round(time.monotonic() - start, 1), "torch": torch.__version__,
            "cxx11_abi": abi, "libs": libs}


def _options(argv):
    opts = {"--manifest": None, "--timeout": "60", "--device": "cpu", "--runtime": "python", "--loader": None}
    i = 0
    while i < len(argv):
        if argv[i] not in opts or i + 1 >= len(argv):
            raise ValueError(f"unknown argument {argv[i]}")
        opts[argv[i]], i = argv[i + 1], i + 2
    return opts


def main(argv):
    if argv[:1] == ["--reference"]:
        kind, artifact, inputs, outputs = argv[1:5]
        result = child(kind, artifact, inputs, outputs, write_outputs=True)
        print(json.dumps(result))
        return 0 if result["status"] == "ok" else 1
    if argv[:1] == ["--one"]:  # one artifact in this fresh process (AOTInductor packages)
        entry, device = json.loads(argv[1]), argv[2]
        print(json.dumps(child(entry["kind"], entry["artifact"], entry.get("inputs"), entry.get("outputs"),
                               device=device)), flush=True)
        os._exit(0)  # no interpreter teardown: unloading a package's library and CUDA can crash after the verdict
    if argv[:1] == ["--build-loader"]:
        result = build_loader(argv[1], argv[2])
        print(json.dumps({"schema": SCHEMA} | result))
        return 0 if result["ok"] else 1
    try:
        opts = _options(argv)
        timeout = float(opts["--timeout"])
        with open(opts["--manifest"]) as fh:
            entries = json.load(fh)
        import warnings

        warnings.simplefilter("ignore")
        try:
            import torch  # imported once here; every forked child inherits it
        except ImportError as exc:  # a torch the sandbox user may not read says so in one line
            raise RuntimeError(f"cannot import torch: {exc}") from None

        device, gpu = resolve_device(opts["--device"])
    except (ValueError, OSError, RuntimeError) as exc:
        print(json.dumps({"schema": SCHEMA, "error": str(exc)}))
        return 2
    runtime = opts["--runtime"]
    loader = CppLoader(opts["--loader"]) if runtime == "libtorch" else None
    results = []
    for entry in entries:
        start = time.monotonic()
        if loader is not None:
            res = loader.check(entry, timeout, device)
        elif entry["kind"] == "aoti":
            res = aoti(entry, device, timeout)
        else:
            res = forked(lambda e=entry: child(e["kind"], e["artifact"], e.get("inputs"), e.get("outputs"),
                                               device=device), timeout)
        res.update(id=entry["id"], seconds=round(time.monotonic() - start, 3))
        results.append(res)
    if loader is not None:
        loader.close()
    print(json.dumps({"schema": SCHEMA, "torch": torch.__version__, "python": sys.version.split()[0],
                      "device": device, "gpu": gpu, "runtime": runtime, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
