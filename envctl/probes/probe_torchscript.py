"""The smoke probe's TorchScript round-trip: script, save, load in a fresh process.

A module with data-dependent control flow is scripted (both branches kept) and traced
(one branch frozen); the scripted module is saved and loaded by a fresh interpreter
(roundtrip.py next to this file, else an inline copy of it), which runs it on saved
inputs. Part of the in-image smoke probe (see smoke.py): standard library and torch
only (torch imported lazily), Python >= 3.9.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

from probe_bench import compare_outputs
from probe_models import model_classes
from probe_report import add_warnings, check, error_line, first_line

_ROUNDTRIP_INLINE = r"""
import json, sys
try:
    import torch
    m = torch.jit.load(sys.argv[1], map_location="cpu"); m.eval()
    xs = torch.load(sys.argv[2])
    with torch.no_grad():
        outs = [m(x) for x in xs]
    torch.save(outs, sys.argv[3])
    print(json.dumps({"ok": True, "torch": torch.__version__, "n": len(outs)}))
except Exception as e:
    line = (str(e).strip().splitlines() or [""])[0]
    print(json.dumps({"ok": False, "error": type(e).__name__ + ": " + line}))
    sys.exit(1)
"""


def torchscript_roundtrip(jit_warnings, workdir):
    """The round-trip's report (never raises); files go to workdir."""
    res = {"ok": False, "error": None, "fresh_process": False, "script": None, "trace": None,
           "warnings": jit_warnings}
    t0 = time.perf_counter()
    try:
        import torch

        Branchy = model_classes()["Branchy"]
        torch.manual_seed(7)
        model = Branchy().eval()
        g = torch.Generator().manual_seed(11)
        pos = torch.rand(4, 16, generator=g) + 0.1
        neg = -(torch.rand(4, 16, generator=g) + 0.1)
        with torch.no_grad():
            ref = [model(pos), model(neg)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scripted = torch.jit.script(model)
            with torch.no_grad():
                traced = torch.jit.trace(model, (pos,))
            model_path = os.path.join(workdir, "branchy.pt")
            torch.jit.save(scripted, model_path)
        add_warnings(jit_warnings, caught)
        inputs_path = os.path.join(workdir, "inputs.pt")
        outputs_path = os.path.join(workdir, "outputs.pt")
        torch.save([pos, neg], inputs_path)

        helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "roundtrip.py")
        if os.path.isfile(helper):
            argv = [sys.executable, helper, model_path, inputs_path, outputs_path]
        else:
            argv = [sys.executable, "-c", _ROUNDTRIP_INLINE, model_path, inputs_path, outputs_path]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, timeout=300, cwd=workdir)
        if proc.stderr:
            sys.stderr.write(proc.stderr)
        child = None
        for line in reversed(proc.stdout.splitlines()):
            try:
                child = json.loads(line)
                break
            except ValueError:
                continue
        if proc.returncode != 0 or not child or not child.get("ok"):
            why = (child or {}).get("error") or first_line(proc.stderr) or f"exit {proc.returncode}"
            raise RuntimeError(f"loading the saved module in a fresh process failed: {why}")
        res["fresh_process"] = True
        res["child_torch"] = child.get("torch")
        loaded = torch.load(outputs_path)

        def branch(out, want):
            a, r, ok = compare_outputs(out, want, "fp32")
            return {"max_abs_err": a, "agree": ok}

        res["script"] = {"positive": branch(loaded[0], ref[0]), "negative": branch(loaded[1], ref[1])}
        with torch.no_grad():
            tp, tn = traced(pos), traced(neg)
        res["trace"] = {"positive": branch(tp, ref[0]), "negative": branch(tn, ref[1])}
        res["trace"]["froze_branch"] = bool(res["trace"]["positive"]["agree"]
                                            and not res["trace"]["negative"]["agree"])
        res["ok"] = bool(res["script"]["positive"]["agree"] and res["script"]["negative"]["agree"])
        if not res["ok"]:
            res["error"] = "scripted module loaded in a fresh process gives different outputs"
    except Exception as exc:
        res["error"] = error_line(exc)
    res["duration_s"] = round(time.perf_counter() - t0, 3)
    return res


def torchscript_check(ts):
    """The "torchscript round-trip" check for the round-trip's report."""
    import torch

    if ts["ok"]:
        froze = ts["trace"]["froze_branch"]
        return check("torchscript round-trip", "pass",
                     "scripted module saved, loaded in a fresh process, both branches match"
                     + ("; trace froze the traced branch as expected" if froze else
                        "; note: trace did not freeze the branch"))
    if not hasattr(torch, "jit"):
        return check("torchscript round-trip", "warn", "torch.jit is not available in this torch")
    return check("torchscript round-trip", "fail", f"TorchScript round-trip failed: {ts['error']}")
