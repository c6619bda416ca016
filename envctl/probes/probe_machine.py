"""Machine state around the benchmarks: GPU clocks, temperature, power, throttle reasons, CPU load.

GPU state comes from NVML through ctypes (libnvidia-ml.so.1, which the NVIDIA container
toolkit mounts into GPU containers), else from ``nvidia-smi``; CPU state from /proc (load
average, busy time of all CPUs minus this process's own CPU time = what other processes
used). A sample is cheap (NVML: well under a millisecond), so the runner takes one before
and after every measured group and the probe one at its start and end: a noisy run explains
itself. Part of the in-image smoke probe (see smoke.py): standard library and torch only,
Python >= 3.9.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import time

# NVML clock event ("throttle") reason bits that say the clocks were held down.
THROTTLE_BITS = {0x4: "sw power cap", 0x8: "hw slowdown", 0x20: "sw thermal slowdown",
                 0x40: "hw thermal slowdown", 0x80: "hw power brake"}
CLOCK_CHANGE_PCT = 10.0  # SM clock moving more than this between two samples is noted
BUSY_SHARE = 0.25  # other processes using more than this share of the CPUs is noted
HOST_CHANGE_PCT = 15.0  # host dispatch speed moving more than this within a window is noted


class _Nvml:
    """The few NVML calls the probe needs; ``ok`` is False where NVML cannot be loaded."""

    def __init__(self, pci_bus_id=None, index=0):
        self.ok, self.handle, self.lib = False, None, None
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            if lib.nvmlInit_v2() != 0:
                return
            handle = ctypes.c_void_p()
            rc = -1
            if pci_bus_id:
                rc = lib.nvmlDeviceGetHandleByPciBusId_v2(pci_bus_id.encode(), ctypes.byref(handle))
            if rc != 0:
                rc = lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle))
            if rc == 0:
                self.lib, self.handle, self.ok = lib, handle, True
        except (OSError, AttributeError):
            pass

    def _uint(self, fn, *args):
        val = ctypes.c_uint()
        try:
            rc = getattr(self.lib, fn)(self.handle, *args, ctypes.byref(val))
        except AttributeError:
            return None
        return int(val.value) if rc == 0 else None

    def _reasons(self):
        val = ctypes.c_ulonglong()
        for fn in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            try:
                if getattr(self.lib, fn)(self.handle, ctypes.byref(val)) == 0:
                    return int(val.value)
            except AttributeError:
                continue
        return None

    def sample(self):
        power = self._uint("nvmlDeviceGetPowerUsage")
        limit = self._uint("nvmlDeviceGetEnforcedPowerLimit")
        return {"source": "nvml", "sm_mhz": self._uint("nvmlDeviceGetClockInfo", 1),
                "mem_mhz": self._uint("nvmlDeviceGetClockInfo", 2),
                "sm_max_mhz": self._uint("nvmlDeviceGetMaxClockInfo", 1),
                "temp_c": self._uint("nvmlDeviceGetTemperature", 0),
                "power_w": round(power / 1000.0, 1) if power is not None else None,
                "power_limit_w": round(limit / 1000.0, 1) if limit is not None else None,
                "throttle_mask": self._reasons()}


_SMI_FIELDS = ("clocks.sm", "clocks.mem", "clocks.max.sm", "temperature.gpu", "power.draw",
               "power.limit", "clocks_event_reasons.active")


def _smi_sample(index):
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, f"--id={index}", "--query-gpu=" + ",".join(_SMI_FIELDS),
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    vals = [v.strip() for v in out[0].split(",")]
    if len(vals) != len(_SMI_FIELDS):
        return None

    def num(v, conv=float):
        try:
            return conv(v, 16) if conv is int else conv(v)
        except ValueError:
            return None

    return {"source": "nvidia-smi", "sm_mhz": num(vals[0]), "mem_mhz": num(vals[1]),
            "sm_max_mhz": num(vals[2]), "temp_c": num(vals[3]), "power_w": num(vals[4]),
            "power_limit_w": num(vals[5]), "throttle_mask": num(vals[6].replace("0x", ""), int)}


def _cpu_times():
    """(busy seconds of all CPUs, this process's CPU seconds), from /proc/stat and os.times."""
    busy = None
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        busy = (sum(fields[:8]) - idle) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return busy, t.user + t.system


def _loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def host_speed():
    """Microseconds per tiny torch op dispatched from Python and per 1000 bytecode-loop steps.

    Eager inference of small batches is bound by this host speed, not by the GPU; it moves
    from process to process on a shared host, and with it every host-bound timing.
    """
    import sys

    torch = sys.modules.get("torch")
    out = {}
    t0 = time.perf_counter()
    acc = 0
    for i in range(20000):
        acc += i
    out["py_loop_us"] = round((time.perf_counter() - t0) * 1e6 / 20.0, 3)
    if torch is not None:
        x = torch.zeros(1)
        best = None
        for _ in range(3):  # best of three: the speed the host gives, not its interruptions
            t0 = time.perf_counter()
            for _ in range(300):
                x.add_(1)
            dt = (time.perf_counter() - t0) * 1e6 / 300.0
            best = dt if best is None else min(best, dt)
        out["torch_op_us"] = round(best, 3)
    return out


def dispatch_us(n=100):
    """Microseconds per tiny CPU torch op right now: the host speed that eager dispatch sees."""
    import torch

    x = _DISPATCH.get("x")
    if x is None:
        x = _DISPATCH["x"] = torch.zeros(1)
    t0 = time.perf_counter()
    for _ in range(n):
        x.add_(1)
    return (time.perf_counter() - t0) * 1e6 / n


_DISPATCH = {}


def throttle_names(mask):
    return [name for bit, name in THROTTLE_BITS.items() if mask and mask & bit]


class Monitor:
    """Samples of the machine; ``window()`` brackets a measurement."""

    def __init__(self, cuda, index=0, pci_bus_id=None):
        self.cuda = cuda
        self.index = index
        self.nvml = _Nvml(pci_bus_id, index) if cuda else None
        try:
            self.cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cores = os.cpu_count() or 1

    def sample(self):
        gpu = None
        if self.cuda:
            gpu = self.nvml.sample() if self.nvml.ok else _smi_sample(self.index)
            if gpu is not None:
                gpu["throttle"] = throttle_names(gpu.get("throttle_mask"))
        busy, own = _cpu_times()
        return {"t": time.time(), "gpu": gpu, "loadavg_1m": _loadavg(), "cores": self.cores,
                "host": host_speed(), "_busy": busy, "_own": own, "_mono": time.perf_counter()}

    def window(self, before, after):
        """The state over [before, after]: both samples and the CPU use of other processes."""
        wall = after["_mono"] - before["_mono"]
        other = None
        if before["_busy"] is not None and after["_busy"] is not None and wall > 0:
            used = (after["_busy"] - before["_busy"]) - (after["_own"] - before["_own"])
            other = round(max(0.0, used / wall), 2)
        return {"before": public(before), "after": public(after), "seconds": round(wall, 3),
                "other_cpu_cores": other, "cores": self.cores}


def public(sample):
    """A sample without its private bookkeeping fields."""
    return {k: v for k, v in sample.items() if not k.startswith("_")}


def noise_notes(window):
    """Why a window may have been noisy: throttling, clock changes, other processes' CPU use."""
    notes = []
    b, a = window["before"].get("gpu"), window["after"].get("gpu")
    if b and a:
        held = sorted(set(b.get("throttle") or []) | set(a.get("throttle") or []))
        if held:
            notes.append("GPU clocks held down: " + ", ".join(held))
        if b.get("sm_mhz") and a.get("sm_mhz"):
            change = abs(a["sm_mhz"] - b["sm_mhz"]) / b["sm_mhz"] * 100.0
            if change > CLOCK_CHANGE_PCT:
                notes.append(f"GPU SM clock moved {b['sm_mhz']:.0f} -> {a['sm_mhz']:.0f} MHz")
        if b.get("temp_c") is not None and a.get("temp_c") is not None and a["temp_c"] - b["temp_c"] >= 10:
            notes.append(f"GPU warmed {b['temp_c']} -> {a['temp_c']} C")
    hb, ha = window["before"].get("host") or {}, window["after"].get("host") or {}
    if hb.get("torch_op_us") and ha.get("torch_op_us"):
        change = abs(ha["torch_op_us"] - hb["torch_op_us"]) / hb["torch_op_us"] * 100.0
        if change > HOST_CHANGE_PCT:
            notes.append(f"host dispatch speed moved {hb['torch_op_us']:.2f} -> "
                         f"{ha['torch_op_us']:.2f} us per op")
    busy = contention(window)
    if busy:
        notes.append(busy)
    return notes


def contention(window):
    """The note when other processes used more than BUSY_SHARE of the CPUs over the window, else None."""
    other, cores = window.get("other_cpu_cores"), window.get("cores") or 1
    if other is not None and other > BUSY_SHARE * cores:
        return f"other processes used {other:.1f} of {cores} CPU cores"
    return None
