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
    return finish_roundtrip(start_roundtrip(jit_warnings, workdir))


def start_roundtrip(jit_warnings, workdir):
    """Script, trace and save the module, and start the fresh process without waiting for it.

    The child spends most of its time importing torch; the probe starts it before the
    benchmarks and waits for it (``wait_roundtrip``) before the first timing, so that cost
    hides behind the first compile. ``finish_roundtrip`` checks its outputs.
    """
    res = {"ok": False, "error": None, "fresh_process": False, "script": None, "trace": None,
           "warnings": jit_warnings}
    state = {"res": res, "t0": time.perf_counter(), "proc": None, "output": None}
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
        state.update(pos=pos, neg=neg, ref=ref, traced=traced, outputs_path=outputs_path)

        helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "roundtrip.py")
        if os.path.isfile(helper):
            argv = [sys.executable, helper, model_path, inputs_path, outputs_path]
        else:
            argv = [sys.executable, "-c", _ROUNDTRIP_INLINE, model_path, inputs_path, outputs_path]
        state["proc"] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, text=True, cwd=workdir)
    except Exception as exc:
        res["error"] = error_line(exc)
    return state


def wait_roundtrip(state):
    """Wait for the fresh process (at most 300 s) and keep its output; never raises."""
    proc = state.get("proc")
    if proc is None or state["output"] is not None:
        return
    try:
        state["output"] = proc.communicate(timeout=300)
    except Exception as exc:
        proc.kill()
        proc.communicate()
        state["output"] = ("", f"the fresh process did not finish: {error_line(exc)}")


def finish_roundtrip(state):
    """The round-trip's report from a started one (never raises)."""
    res = state["res"]
    if state.get("proc") is None:
        res["duration_s"] = round(time.perf_counter() - state["t0"], 3)
        return res
    try:
        import torch

        wait_roundtrip(state)
        stdout, stderr = state["output"]
        proc = state["proc"]
        if stderr:
            sys.stderr.write(stderr)
        child = None
        for line in reversed(stdout.splitlines()):
            try:
                child = json.loads(line)
                break
            except ValueError:
                continue
        if proc.returncode != 0 or not child or not child.get("ok"):
            why = (child or {}).get("error") or first_line(stderr) or f"exit {proc.returncode}"
            raise RuntimeError(f"loading the saved module in a fresh process failed: {why}")
        res["fresh_process"] = True
        res["child_torch"] = child.get("torch")
        loaded = torch.load(state["outputs_path"])
        ref, traced, pos, neg = state["ref"], state["traced"], state["pos"], state["neg"]

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
    res["duration_s"] = round(time.perf_counter() - state["t0"], 3)
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
