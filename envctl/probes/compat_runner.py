"""envctl compat runner: load and run model artifacts, each in its own child process.

Runs inside an image (or any Python with torch), standard library and torch only:

    python compat_runner.py --manifest MANIFEST.json [--timeout S]
    python compat_runner.py --reference ARTIFACT KIND INPUTS OUTPUTS   (write reference outputs)

The manifest lists {id, kind: torchscript|export, artifact, inputs, outputs}.  Every
artifact is loaded in a forked child process, so a crash (even a segfault or an OOM
kill) or a hang hides nothing else.  Prints one JSON object on stdout:
{"schema": "envctl.compat/1", "torch": ..., "results": [{id, status, detail, ...}]}
where status is ok, load-error, run-error, mismatch, crash or timeout.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

SCHEMA = "envctl.compat/1"
# Allowed max |out - ref| / max(|ref|, 1) per dtype.
TOLERANCE = {"float64": 1e-9, "float32": 1e-5, "float16": 1e-2, "bfloat16": 2e-2}


def _first_line(exc):
    text = str(exc).strip() or type(exc).__name__
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "from ")):
            return f"{type(exc).__name__}: {line}"[:300]
    return type(exc).__name__


def _flatten(value):
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _flatten(value[k])]
    return []


def _load(kind, path):
    import torch

    if kind == "export":
        return torch.export.load(path).module()
    return torch.jit.load(path, map_location="cpu")


def _call(model, inputs):
    import torch

    with torch.no_grad():
        if isinstance(inputs, dict):
            return model(**inputs)
        if isinstance(inputs, (list, tuple)):
            return model(*inputs)
        return model(inputs)


def child(kind, artifact, inputs_path, outputs_path, write_outputs=False):
    """One artifact: load, run, compare. Prints one JSON line; never raises."""
    import warnings

    warnings.simplefilter("ignore")
    import torch

    try:
        model = _load(kind, artifact)
    except Exception as exc:  # noqa: BLE001 - every load failure is a result
        return {"status": "load-error", "detail": _first_line(exc)}
    if not inputs_path:
        return {"status": "ok", "detail": "loaded (no sample inputs to run)"}
    try:
        inputs = torch.load(inputs_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        return {"status": "run-error", "detail": "cannot read sample inputs: " + _first_line(exc)}
    try:
        got = _flatten(_call(model, inputs))
    except Exception as exc:  # noqa: BLE001
        return {"status": "run-error", "detail": _first_line(exc)}
    if write_outputs:
        torch.save([t.detach().cpu() for t in got], outputs_path)
        return {"status": "ok", "detail": f"wrote {len(got)} reference outputs"}
    if not outputs_path:
        return {"status": "ok", "detail": "ran (no reference outputs to compare)"}
    try:  # a bare tensor, a list or a dict of tensors: compared as the same flat list as the outputs
        want = _flatten(torch.load(outputs_path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001
        return {"status": "run-error", "detail": "cannot read reference outputs: " + _first_line(exc)}
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


def run_one(entry, timeout):
    """Run one artifact in a forked child: torch is imported once in the parent, so a child
    starts in milliseconds, while a crash or hang still ends only that child."""
    import select

    start = time.monotonic()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            result = child(entry["kind"], entry["artifact"], entry.get("inputs"), entry.get("outputs"))
        except BaseException as exc:  # noqa: BLE001 - report, never propagate out of the fork
            result = {"status": "crash", "detail": "runner error: " + _first_line(exc)}
        with os.fdopen(write_fd, "w") as fh:
            fh.write(json.dumps(result))
        os._exit(0)
    os.close(write_fd)
    chunks, deadline, status = [], start + timeout, None
    with os.fdopen(read_fd) as fh:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"status": "timeout", "detail": f"no answer within {timeout:g}s",
                        "seconds": round(time.monotonic() - start, 3)}
            ready, _, _ = select.select([fh], [], [], min(left, 0.5))
            if ready:
                data = fh.read()
                chunks.append(data)
                if data == "":
                    break
                # read() returns everything up to EOF, which comes when the child exits
                break
    _, status = os.waitpid(pid, 0)
    text = "".join(chunks).strip()
    if os.WIFSIGNALED(status):
        try:
            name = signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            name = f"signal {os.WTERMSIG(status)}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        result = {"status": "crash", "detail": f"killed by {name}{hint} during load or run"}
    elif not text:
        result = {"status": "crash", "detail": f"exited with code {os.WEXITSTATUS(status)} and no result"}
    else:
        result = json.loads(text)
    result["seconds"] = round(time.monotonic() - start, 3)
    return result


def main(argv):
    if argv[:1] == ["--reference"]:
        kind, artifact, inputs, outputs = argv[1:5]
        result = child(kind, artifact, inputs, outputs, write_outputs=True)
        print(json.dumps(result))
        return 0 if result["status"] == "ok" else 1
    manifest, timeout = None, 60.0
    i = 0
    while i < len(argv):
        if argv[i] == "--manifest":
            manifest, i = argv[i + 1], i + 2
        elif argv[i] == "--timeout":
            timeout, i = float(argv[i + 1]), i + 2
        else:
            print(json.dumps({"schema": SCHEMA, "error": f"unknown argument {argv[i]}"}))
            return 2
    with open(manifest) as fh:
        entries = json.load(fh)
    import torch  # imported once here; every forked child inherits it

    import warnings

    warnings.simplefilter("ignore")
    results = []
    for entry in entries:
        res = run_one(entry, timeout)
        res["id"] = entry["id"]
        results.append(res)
    print(json.dumps({"schema": SCHEMA, "torch": torch.__version__, "python": sys.version.split()[0],
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
