"""Load a saved TorchScript module in a fresh process and run it on saved inputs.

Run by smoke.py as ``python roundtrip.py MODEL.pt INPUTS.pt OUTPUTS.pt``.
Imports only the standard library and torch. Prints one JSON object on stdout.
"""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(json.dumps({"ok": False, "error": "usage: roundtrip.py MODEL INPUTS OUTPUTS"}))
        return 2
    model_path, inputs_path, outputs_path = argv
    try:
        import torch

        module = torch.jit.load(model_path, map_location="cpu")
        module.eval()
        inputs = torch.load(inputs_path)
        with torch.no_grad():
            outputs = [module(x) for x in inputs]
        torch.save(outputs, outputs_path)
        print(json.dumps({"ok": True, "torch": torch.__version__, "n": len(outputs)}))
        return 0
    except Exception as exc:  # report, never raise: the parent reads our stdout
        first = (str(exc).strip().splitlines() or [""])[0]
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {first}"}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
