"""CUDA errors that must reach Python as exceptions, tried in a process of their own.

Run by probe_release.py as ``python cuda_errors.py DEVICE [--gds]``. A device-side assert
leaves the CUDA context unusable for the rest of the process, so the smoke probe never
triggers one itself: this child does, last, after the optional cuFile (GDS) registration,
and ends with os._exit so that torch's teardown never touches the broken context.

Prints one JSON object per line on stdout, each as soon as it is known, so that a crash in
the second still reports the first: {"test": "gds", ...} then {"test": "assert", ...}.
Part of the in-image smoke probe (see smoke.py): standard library and torch only,
Python >= 3.9.
"""
from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # the probe folder is mounted read-only

import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from probe_report import error_line  # noqa: E402


def _raised(test, exc):
    text = str(exc)
    return {"test": test, "outcome": "raised", "runtime_error": isinstance(exc, RuntimeError),
            "names_cuda": "CUDA" in text or "HIP" in text, "names_cufile": "cuFile" in text,
            "error": error_line(exc)}


def gds(torch, device):
    """smoke_test's test_cuda_gds_errors_captured: register a temp file with cuFile."""
    try:
        import torch.cuda.gds  # noqa: F401 - absent before torch 2.5

        torch._C._gds_register_handle  # noqa: B018 - absent when torch is built without cuFile
    except (ImportError, AttributeError) as exc:
        return {"test": "gds", "outcome": "unsupported", "error": error_line(exc)}
    try:
        torch.cuda.set_device(torch.device(device))
        with tempfile.NamedTemporaryFile() as f:
            handle = torch.cuda.gds.GdsFile(f.name, os.O_CREAT | os.O_RDWR)
            del handle  # deregisters before the file goes
    except Exception as exc:
        return _raised("gds", exc)
    return {"test": "gds", "outcome": "registered"}


def device_assert(torch, device):
    """smoke_test's test_cuda_runtime_errors_captured: a failing torch._assert_async."""
    cuda = device.startswith("cuda")
    try:  # a device this process cannot use must not pass for a captured assert
        flag = torch.tensor(0, device=device)
        if cuda:
            torch.cuda.synchronize(torch.device(device))
    except Exception as exc:
        return {"test": "assert", "outcome": "setup", "error": error_line(exc)}
    try:
        torch._assert_async(flag)
        if cuda:
            torch.cuda.synchronize(torch.device(device))  # the assert fires asynchronously
    except Exception as exc:
        return _raised("assert", exc)
    return {"test": "assert", "outcome": "silent"}


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.stderr.write("usage: cuda_errors.py DEVICE [--gds]\n")
        return 2
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a kernel's assert message is printed on stdout: keep stdout for JSON
    device = argv[0]

    def report(obj):
        os.write(out_fd, (json.dumps(obj) + "\n").encode())

    import torch

    if "--gds" in argv[1:]:
        report(gds(torch, device))
    report(device_assert(torch, device))
    sys.stderr.flush()
    os._exit(0)  # the CUDA context may be poisoned: skip torch's teardown


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
