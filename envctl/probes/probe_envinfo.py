"""The environment report of the smoke probe: what is installed, with no judgement.

Python, platform, C/C++ compilers, Python headers, pip and conda packages, and (once
torch is imported) torch's build, cuDNN, NCCL, Triton, GPUs, arch list and driver.
Part of the in-image smoke probe (see smoke.py): standard library and torch only (torch
imported lazily), Python >= 3.9.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig

from probe_report import error_line, first_line
from probe_versions import cudnn_int_to_tuple, normalize_name, parse_version


def run_quiet(argv, timeout=10):
    """(exit status, stdout) of a command, or (None, "") when it cannot run."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout, text=True)
        return proc.returncode, proc.stdout
    except (OSError, subprocess.SubprocessError):
        return None, ""


def driver_version():
    if shutil.which("nvidia-smi"):
        rc, out = run_quiet(["nvidia-smi", "--query-gpu=driver_version",
                             "--format=csv,noheader"], timeout=15)
        if rc == 0 and first_line(out):
            return first_line(out)
    try:
        with open("/proc/driver/nvidia/version") as fh:
            m = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+\.\d+(?:\.\d+)?)", fh.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    return None


def find_compilers():
    """C and C++ compilers as torch would find them: $CXX else g++ (inductor), $CC else gcc/clang (triton)."""
    found = {n: shutil.which(n) for n in ("cc", "gcc", "c++", "g++", "clang", "clang++")}
    env_cc, env_cxx = os.environ.get("CC"), os.environ.get("CXX")
    if env_cxx:
        cxx = shutil.which(env_cxx)
    else:
        cxx = found["g++"] or found["c++"] or found["clang++"]
    if env_cc:
        cc = shutil.which(env_cc)
    else:
        cc = found["gcc"] or found["clang"] or found["cc"]
    return {"cc": cc, "cxx": cxx, "env_cc": env_cc, "env_cxx": env_cxx, "found": found}


def python_headers():
    inc = sysconfig.get_paths().get("include") or sysconfig.get_config_var("INCLUDEPY") or ""
    header = os.path.join(inc, "Python.h") if inc else ""
    return {"include_dir": inc or None, "present": bool(header) and os.path.isfile(header)}


def pip_packages():
    """({normalized name: version}, [names whose INSTALLER is conda]) from importlib.metadata."""
    from importlib import metadata

    out, by_conda = {}, []
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = None
        if not name:
            continue
        key = normalize_name(name)
        if key in out:  # first on sys.path wins, as for imports
            continue
        out[key] = dist.version
        try:
            if (dist.read_text("INSTALLER") or "").strip().lower() == "conda":
                by_conda.append(key)
        except Exception:
            pass
    return dict(sorted(out.items())), sorted(by_conda)


def conda_packages(prefix=None):
    """{name: "version-build"} from <prefix>/conda-meta/*.json, or None when not a conda env."""
    meta = os.path.join(prefix or sys.prefix, "conda-meta")
    if not os.path.isdir(meta):
        return None
    out = {}
    for fn in sorted(os.listdir(meta)):
        if not fn.endswith(".json"):
            continue
        parts = fn[: -len(".json")].rsplit("-", 2)
        if len(parts) == 3:
            out[parts[0]] = f"{parts[1]}-{parts[2]}"
        else:
            try:
                with open(os.path.join(meta, fn)) as fh:
                    rec = json.load(fh)
                out[rec["name"]] = f"{rec['version']}-{rec.get('build', '')}"
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return out


def collect_env_basic():
    """Everything that needs no torch: Python, platform, compilers, headers, packages."""
    pip, by_conda = pip_packages()
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
            "libc": "-".join(x for x in platform.libc_ver() if x) or None,
            "cpu_count": os.cpu_count(),
        },
        "compiler": find_compilers(),
        "python_headers": python_headers(),
        "packages": {"pip": pip, "pip_from_conda": by_conda, "conda": conda_packages()},
    }


def triton_version(pip):
    """Triton's version when it is importable (found, not imported: importing it is slow)."""
    import importlib.util

    try:
        if importlib.util.find_spec("triton") is None:
            return None
    except (ImportError, ValueError):
        return None
    for name in ("triton", "pytorch-triton", "pytorch-triton-rocm", "pytorch-triton-xpu",
                 "triton-xpu"):
        if name in pip:
            return pip[name]
    return "unknown"


def collect_env_torch(env):
    """Add torch's build, libraries and GPUs to env (torch is already imported)."""
    import torch as t

    info = {"version": t.__version__, "parsed": parse_version(t.__version__),
            "path": os.path.dirname(t.__file__), "cuda": t.version.cuda,
            "hip": getattr(t.version, "hip", None), "git": getattr(t.version, "git_version", None),
            "debug": bool(getattr(t.version, "debug", False))}
    env["torch"] = info
    try:
        cudnn = t.backends.cudnn.version() if t.backends.cudnn.is_available() else None
    except Exception as exc:
        cudnn = None
        info["cudnn_error"] = error_line(exc)
    env["cudnn"] = cudnn
    env["cudnn_version"] = ".".join(map(str, cudnn_int_to_tuple(cudnn))) if cudnn else None
    nccl = None
    try:
        if t.version.cuda and hasattr(t.cuda, "nccl"):
            v = t.cuda.nccl.version()
            if isinstance(v, (tuple, list)):
                nccl = ".".join(str(x) for x in v)
            else:  # old torch: NCCL_VERSION_CODE int, 21805 -> 2.18.5, 2708 -> 2.7.8
                nccl = ".".join(str(x) for x in cudnn_int_to_tuple(int(v)))
    except Exception:
        nccl = None
    env["nccl"] = nccl
    env["triton"] = triton_version(env["packages"]["pip"])
    env["torchvision"] = env["packages"]["pip"].get("torchvision")
    try:
        env["cuda_available"] = bool(t.cuda.is_available())
    except Exception:
        env["cuda_available"] = False
    try:
        env["arch_list"] = list(t.cuda.get_arch_list())
    except Exception:
        env["arch_list"] = []
    if not env["arch_list"] and t.version.cuda:
        # get_arch_list() answers [] without a GPU; the compiled-in flags need none.
        try:
            env["arch_list"] = [a for a in str(t._C._cuda_getArchFlags()).split() if a]
        except Exception:
            pass
    gpus = []
    if env["cuda_available"]:
        for i in range(t.cuda.device_count()):
            try:
                p = t.cuda.get_device_properties(i)
                gpus.append({"index": i, "name": p.name, "capability": f"{p.major}.{p.minor}",
                             "memory_bytes": int(p.total_memory)})
            except Exception as exc:
                gpus.append({"index": i, "name": None, "capability": None, "memory_bytes": None,
                             "error": error_line(exc)})
    env["gpus"] = gpus
    env["driver_version"] = driver_version() if (gpus or t.version.cuda) else None
    return env
