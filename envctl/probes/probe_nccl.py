"""What NCCL chose, read from its NCCL_DEBUG=INFO lines, and the bus bandwidth reference.

The multi-GPU check (probe_multigpu.py) runs its ranks with NCCL_DEBUG=INFO; NCCL then logs
each channel it connects with the transport it picked, e.g.

    node:1234:1300 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM/read
    node:1234:1300 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via SHM/direct/direct
    node:1234:1300 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] [send] via NET/Socket/0

``parse_nccl_log`` counts the channels per transport (P2P/CUMEM, P2P/IPC, SHM, NET/Socket,
NET/IB, ...) and notes the version, the network plugin, NCCL_* variables NCCL says it read,
its NVLS and CollNet channel counts, and the first NVLS or CollNet line. ``reference_for`` finds the bus bandwidth a run is held to:
the config's own numbers, else multigpu_reference.json beside this file (the first run
recorded for a GPU model and world size). Part of the in-image smoke probe (see smoke.py):
standard library only, Python >= 3.9.
"""
from __future__ import annotations

import json
import os
import re

REFERENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multigpu_reference.json")
# A bus bandwidth under this fraction of the reference is "far under" it: a warning.
WARN_FRACTION = 0.5

_VIA = re.compile(r"\bvia (\S+)")
_VERSION = re.compile(r"NCCL version (\S+)")
_NETWORK = re.compile(r"Using network (\S+)")
_ENV = re.compile(r"\b(NCCL_\w+) set by environment to (\S+?)\.?$")
_NVLS_USED = re.compile(r"NVLS comm|via NVLS")
_CHANNELS = re.compile(r"(\d+) (nvls|collnet) channels")  # "24 coll channels, 0 collnet channels, 0 nvls channels"
_PREFIX = re.compile(r"^.*?NCCL INFO\s*")


def transport_name(via):
    """ "P2P/CUMEM/read" -> "P2P/CUMEM", "NET/IB/0/GDRDMA" -> "NET/IB", "SHM/direct/direct" -> "SHM"."""
    parts = via.split("/")
    return "/".join(parts[:2]) if parts[0] in ("P2P", "NET") and len(parts) > 1 else parts[0]


def parse_nccl_log(text):
    """The transports and settings NCCL reported in NCCL_DEBUG=INFO text (any other line is ignored)."""
    found = {"transports": {}, "version": None, "network": None, "env": {}, "nvls_used": False,
             "channels": {}, "mentions": {}, "sample": []}
    for line in text.splitlines():
        if "NCCL INFO" not in line:
            continue
        body = _PREFIX.sub("", line.strip())
        via = _VIA.search(body)
        if via:
            name = transport_name(via.group(1))
            found["transports"][name] = found["transports"].get(name, 0) + 1
            if len(found["sample"]) < 4 and not any(s.endswith(via.group(0)) for s in found["sample"]):
                found["sample"].append(body)
        for pattern, key in ((_VERSION, "version"), (_NETWORK, "network")):
            m = pattern.search(body)
            if m and found[key] is None:
                found[key] = m.group(1)
        m = _ENV.search(body)
        if m:
            found["env"][m.group(1)] = m.group(2)
        for feature in ("NVLS", "CollNet"):
            if feature not in found["mentions"] and re.search(rf"\b{feature}\b", body):  # not NCCL_NVLS_ENABLE
                found["mentions"][feature] = body[:200]
        for count, kind in _CHANNELS.findall(body):
            found["channels"][kind] = max(found["channels"].get(kind, 0), int(count))
        if _NVLS_USED.search(body) or found["channels"].get("nvls"):
            found["nvls_used"] = True
    return found


def describe_transports(found):
    """ "P2P/CUMEM (24 channels), SHM (8 channels)", most used first."""
    ranked = sorted(found["transports"].items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{name} ({n} channel{'s' if n != 1 else ''})" for name, n in ranked)


def load_references(path=REFERENCE_FILE):
    """The recorded references: a list of {gpu, world_size, backend, busbw_gbs: {MiB: GB/s}, source}."""
    try:
        with open(path) as fh:
            return json.load(fh).get("references") or []
    except (OSError, ValueError):
        return []


def reference_for(settings, gpu, path=REFERENCE_FILE):
    """(busbw GB/s by size in MiB as text, where it comes from), or (None, why there is none)."""
    own = settings.get("reference_busbw_gbs")
    if own:
        return {str(k): float(v) for k, v in own.items()}, "the config's multi_gpu.reference_busbw_gbs"
    for ref in load_references(path):
        if (ref.get("gpu"), ref.get("world_size"), ref.get("backend", "nccl")) == \
                (gpu, settings["world_size"], settings["backend"]):
            return ({str(k): float(v) for k, v in ref["busbw_gbs"].items()},
                    ref.get("source") or os.path.basename(path))
    return None, (f"no reference for {gpu} x{settings['world_size']} ({settings['backend']}) in "
                  f"{os.path.basename(path)} or the config")
