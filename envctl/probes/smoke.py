"""envctl in-image smoke probe.

Runs inside any image that has torch, with no envctl installed:

    python smoke.py [--config cfg.json | --config -] [--level quick|standard|full]
                    [--quick | --full] [--indent N]

Imports only the Python standard library and torch (torchvision is never imported).
Prints exactly one JSON object (schema "envctl.probe/1") on stdout; everything else,
torch's own output included, goes to stderr. Exit status: 0 when no check failed,
1 when a check failed, 2 on a bad config or bad arguments.

Python >= 3.9 syntax only.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings

SCHEMA = "envctl.probe/1"
EXIT_OK = 0
EXIT_FAIL = 1
EXIT_CONFIG = 2

LEVELS = ("quick", "standard", "full")
MODELS = ("resnet50", "transformer")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DTYPES = ("fp32", "bf16", "fp16")
# Allowed max |out - eager| / max|eager| per dtype.
TOLERANCE = {"fp32": 2e-3, "fp16": 2e-2, "bf16": 8e-2}
# pip/setuptools/wheel are not counted as drift unless the expected set names them.
PIP_TOOLING = ("pip", "setuptools", "wheel")

# Benchmark defaults per device class and level; config keys override, then caps apply.
LEVEL_DEFAULTS = {
    "cuda": {
        "quick": {"models": list(MODELS), "compile_modes": ["default"], "batch_sizes": [8],
                  "dtypes": ["fp32"], "warmup": 3, "runs": 10, "max_autotune": False},
        "standard": {"models": list(MODELS), "compile_modes": ["default", "reduce-overhead"],
                     "batch_sizes": [1, 32], "dtypes": ["fp32", "bf16"], "warmup": 10, "runs": 50,
                     "max_autotune": False},
        "full": {"models": list(MODELS), "compile_modes": ["default", "reduce-overhead"],
                 "batch_sizes": [1, 32, 128], "dtypes": ["fp32", "bf16", "fp16"], "warmup": 10,
                 "runs": 100, "max_autotune": False},
    },
    "cpu": {
        "quick": {"models": list(MODELS), "compile_modes": ["default"], "batch_sizes": [1],
                  "dtypes": ["fp32"], "warmup": 3, "runs": 10, "max_autotune": False},
        "standard": {"models": list(MODELS), "compile_modes": ["default"], "batch_sizes": [1, 4],
                     "dtypes": ["fp32"], "warmup": 5, "runs": 20, "max_autotune": False},
        "full": {"models": list(MODELS), "compile_modes": ["default", "reduce-overhead"],
                 "batch_sizes": [1, 4], "dtypes": ["fp32", "bf16"], "warmup": 5, "runs": 30,
                 "max_autotune": False},
    },
}
CPU_MAX_BATCH = 4
CPU_MAX_RUNS = {"quick": 10, "standard": 20, "full": 30}
CPU_MAX_WARMUP = {"quick": 3, "standard": 5, "full": 5}
QUICK_MAX_RUNS = 10
QUICK_MAX_WARMUP = 3

# Model shapes. CPU variants are small so that a cold torch.compile stays cheap.
MODEL_SHAPES = {
    ("resnet50", "cuda"): {"name": "resnet50", "layers": [3, 4, 6, 3], "width": 64, "image": 224,
                           "classes": 1000},
    ("resnet50", "cpu"): {"name": "resnet-small", "layers": [1, 1, 1, 1], "width": 16, "image": 64,
                          "classes": 100},
    ("transformer", "cuda"): {"name": "transformer", "d": 256, "heads": 8, "seq": 128},
    ("transformer", "cpu"): {"name": "transformer-small", "d": 64, "heads": 4, "seq": 32},
}

torch = None  # bound by _import_torch(); model classes resolve it as a module global
nn = None


class ConfigError(Exception):
    """Bad config or arguments: exit status 2."""


# --------------------------------------------------------------------------- versions

_VERSION_RE = re.compile(
    r"^\s*v?(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?(?P<extra>(?:\.\d+)*)"
    r"(?P<pre>(?:[.\-_]?(?:a|b|c|rc|alpha|beta|pre|preview|post|dev)[.\-_]?\d*)*)"
    r"(?:\+(?P<local>[A-Za-z0-9][A-Za-z0-9._-]*))?\s*$",
    re.IGNORECASE,
)


def parse_version(text):
    """Parse a PEP 440-ish version ("2.13.0+cpu", "2.10.0a0+b4e4ee81d3", "2.7.1+cu118").

    Returns {"major", "minor", "patch", "pre", "local"} (ints, or None where absent; pre is
    whatever sits between the release and "+", e.g. "a0", "rc1", "dev20250101"), or None.
    """
    if text is None:
        return None
    m = _VERSION_RE.match(str(text))
    if not m:
        return None
    pre = (m.group("pre") or "").lstrip(".-_") or None
    return {
        "major": int(m.group("major")),
        "minor": int(m.group("minor")) if m.group("minor") is not None else None,
        "patch": int(m.group("patch")) if m.group("patch") is not None else None,
        "pre": pre,
        "local": m.group("local") or None,
    }


def _release_str(v):
    parts = [v["major"], v["minor"], v["patch"]]
    return ".".join(str(p) for p in parts if p is not None)


def compare_torch_version(expected, actual):
    """(status, message) comparing the installed torch version with the expected one.

    Release parts are compared as far as the expected version spells them; pre-release and
    local label only when the expected version has them.
    """
    ev, av = parse_version(expected), parse_version(actual)
    if ev is None:
        return "fail", f"expected torch version {expected!r} is not a version"
    if av is None:
        return "fail", f"installed torch version {actual!r} cannot be parsed"
    for key in ("major", "minor", "patch"):
        if ev[key] is not None and ev[key] != av[key]:
            return "fail", f"torch {actual} installed, expected {expected}"
    if ev["pre"] is not None and ev["pre"] != av["pre"]:
        return "fail", f"torch {actual} installed, expected pre-release {expected}"
    if ev["local"] is not None and ev["local"] != av["local"]:
        return "fail", f"torch {actual} installed, expected build {expected} (local label differs)"
    if av["pre"] is not None and ev["pre"] is None:
        return "warn", f"torch {actual} is a pre-release build of expected {expected}"
    return "pass", f"torch {actual} matches expected {expected}"


def normalize_name(name):
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", str(name)).lower()


def _norm_pip_version(v, keep_local):
    v = str(v).strip().lower()
    if v.startswith("v"):
        v = v[1:]
    if not keep_local:
        v = v.split("+", 1)[0]
    m = re.match(r"^(\d+(?:\.\d+)*)(.*)$", v)
    if not m:
        return ((), v)
    release = [int(p) for p in m.group(1).split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    return (tuple(release), m.group(2).lstrip(".-_"))


def pip_versions_equal(expected, installed):
    """PEP 440-style equality: zero padding ignored, local label ignored unless expected has one."""
    keep_local = "+" in str(expected)
    return _norm_pip_version(expected, keep_local) == _norm_pip_version(installed, keep_local)


def diff_packages(expected, installed, ignore=()):
    """Compare {name: version} maps; returns {"extra", "missing", "different"}.

    Names are PEP 503 normalized on both sides. Names in `ignore` are not reported as extra
    unless the expected map names them.
    """
    exp = {normalize_name(k): str(v) for k, v in expected.items()}
    ins = {normalize_name(k): str(v) for k, v in installed.items()}
    ign = {normalize_name(n) for n in ignore}
    extra = {k: ins[k] for k in sorted(ins) if k not in exp and k not in ign}
    missing = {k: exp[k] for k in sorted(exp) if k not in ins}
    different = {
        k: {"expected": exp[k], "installed": ins[k]}
        for k in sorted(exp)
        if k in ins and not pip_versions_equal(exp[k], ins[k])
    }
    return {"extra": extra, "missing": missing, "different": different}


def _drift_message(kind, diff):
    parts = []
    if diff["extra"]:
        parts.append(f"{len(diff['extra'])} extra: "
                     + ", ".join(f"{k}=={v}" for k, v in diff["extra"].items()))
    if diff["missing"]:
        parts.append(f"{len(diff['missing'])} missing: "
                     + ", ".join(f"{k}=={v}" for k, v in diff["missing"].items()))
    if diff["different"]:
        parts.append(f"{len(diff['different'])} different: "
                     + ", ".join(f"{k} {d['installed']} (expected {d['expected']})"
                                 for k, d in diff["different"].items()))
    if not parts:
        return f"{kind} packages match the expected set"
    return f"{kind} drift: " + "; ".join(parts)


# --------------------------------------------------------------------------- CUDA archs

_ARCH_RE = re.compile(r"^(sm|compute)_(\d+)([a-z]?)$")


def parse_arch(arch):
    """"sm_86" -> ("sm", 8, 6, ""), "compute_90a" -> ("compute", 9, 0, "a"), else None."""
    m = _ARCH_RE.match(str(arch).strip())
    if not m or len(m.group(2)) < 2:
        return None
    digits = m.group(2)
    return (m.group(1), int(digits[:-1]), int(digits[-1]), m.group(3))


def capability_covered(capability, arch_list):
    """Whether a device of `capability` (major, minor) can run code built for `arch_list`.

    sm_XY cubins run on the same major with minor >= Y ("a" variants only on exactly X.Y,
    "f" variants on the same family); compute_XY PTX JIT-compiles for any device >= X.Y.
    """
    cap = (int(capability[0]), int(capability[1]))
    for arch in arch_list or []:
        p = parse_arch(arch)
        if p is None:
            continue
        kind, major, minor, suffix = p
        if suffix == "a":
            if cap == (major, minor):
                return True
        elif kind == "sm":
            if cap[0] == major and cap[1] >= minor:
                return True
        elif cap >= (major, minor):
            return True
    return False


def _arch_span(arch_list):
    if not arch_list:
        return "(empty)"
    if len(arch_list) <= 2:
        return ", ".join(arch_list)
    return f"{arch_list[0]}..{arch_list[-1]}"


def cudnn_int_to_tuple(v):
    """torch.backends.cudnn.version() int -> (major, minor, patch); 90100 -> (9,1,0), 8902 -> (8,9,2)."""
    v = int(v)
    if v >= 10000:
        return (v // 10000, (v // 100) % 100, v % 100)
    return (v // 1000, (v // 100) % 10, v % 100)


# --------------------------------------------------------------------------- config


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _str_list(value, key, allowed=None):
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"benchmark.{key} must be a non-empty list of strings")
    if allowed is not None:
        bad = [x for x in value if x not in allowed]
        if bad:
            raise ConfigError(f"benchmark.{key}: unknown {bad} (allowed: {', '.join(allowed)})")
    return list(dict.fromkeys(value))


def validate_config(cfg):
    """Validate the config object; returns (cfg, notes). Unknown keys are noted, not fatal."""
    notes = []
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError("config must be a JSON object")
    for key in cfg:
        if key not in ("expect", "gpus", "level", "benchmark"):
            notes.append(f"unknown config key {key!r} ignored")
    expect = cfg.get("expect") or {}
    if not isinstance(expect, dict):
        raise ConfigError("expect must be an object")
    for key in expect:
        if key not in ("torch", "cuda", "gpu_required", "packages"):
            notes.append(f"unknown expect key {key!r} ignored")
    for key in ("torch", "cuda"):
        if key in expect and expect[key] is not None and not isinstance(expect[key], str):
            raise ConfigError(f"expect.{key} must be a string or null")
    if "gpu_required" in expect and not isinstance(expect["gpu_required"], bool):
        raise ConfigError("expect.gpu_required must be true or false")
    packages = expect.get("packages")
    if packages is not None:
        if not isinstance(packages, dict):
            raise ConfigError("expect.packages must be an object or null")
        for kind in packages:
            if kind not in ("pip", "conda"):
                notes.append(f"unknown expect.packages key {kind!r} ignored")
                continue
            pk = packages[kind]
            if pk is None:
                continue
            if not isinstance(pk, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in pk.items()
            ):
                raise ConfigError(f"expect.packages.{kind} must map names to version strings")
    gpus = cfg.get("gpus", "all")
    if not (gpus in ("all", "none") or (_is_int(gpus) and gpus >= 0)):
        raise ConfigError('gpus must be "all", "none" or a non-negative integer')
    if expect.get("gpu_required") and (gpus == "none" or gpus == 0):
        raise ConfigError("expect.gpu_required is true but gpus excludes every GPU")
    level = cfg.get("level", "standard")
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(LEVELS)}")
    bench = cfg.get("benchmark") or {}
    if not isinstance(bench, dict):
        raise ConfigError("benchmark must be an object")
    for key, value in bench.items():
        if key == "models":
            _str_list(value, key, MODELS)
        elif key == "compile_modes":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ConfigError("benchmark.compile_modes must be a list of strings")
            bad = [x for x in value if x not in COMPILE_MODES]
            if bad:
                raise ConfigError(f"benchmark.compile_modes: unknown {bad} "
                                  f"(allowed: {', '.join(COMPILE_MODES)})")
        elif key == "dtypes":
            _str_list(value, key, DTYPES)
        elif key == "batch_sizes":
            if not isinstance(value, list) or not value or not all(
                _is_int(x) and x > 0 for x in value
            ):
                raise ConfigError("benchmark.batch_sizes must be a non-empty list of positive ints")
        elif key in ("warmup", "runs"):
            if not _is_int(value) or value < (1 if key == "runs" else 0):
                raise ConfigError(f"benchmark.{key} must be an integer >= {1 if key == 'runs' else 0}")
        elif key == "max_autotune":
            if not isinstance(value, bool):
                raise ConfigError("benchmark.max_autotune must be true or false")
        else:
            notes.append(f"unknown benchmark key {key!r} ignored")
    return cfg, notes


def resolve_settings(cfg, level, device_kind):
    """Effective benchmark settings for a level on "cuda" or "cpu", with the caps applied."""
    base = dict(LEVEL_DEFAULTS[device_kind][level])
    bench = cfg.get("benchmark") or {}
    for key in base:
        if key in bench:
            base[key] = list(bench[key]) if isinstance(bench[key], list) else bench[key]
    adjusted = []
    if level == "quick":
        quick = LEVEL_DEFAULTS[device_kind]["quick"]
        if device_kind == "cpu":
            if base["batch_sizes"] != quick["batch_sizes"] or base["dtypes"] != quick["dtypes"]:
                adjusted.append("quick on cpu: one batch size (1) and fp32 only")
            base["batch_sizes"], base["dtypes"] = list(quick["batch_sizes"]), list(quick["dtypes"])
        else:
            if len(base["batch_sizes"]) > 1 or len(base["dtypes"]) > 1:
                adjusted.append("quick: first batch size and first dtype only")
            base["batch_sizes"], base["dtypes"] = base["batch_sizes"][:1], base["dtypes"][:1]
        if base["compile_modes"] != ["default"] or base["max_autotune"]:
            adjusted.append('quick: compile mode "default" only')
        base["compile_modes"], base["max_autotune"] = ["default"], False
        if base["runs"] > QUICK_MAX_RUNS or base["warmup"] > QUICK_MAX_WARMUP:
            adjusted.append(f"quick: at most {QUICK_MAX_WARMUP} warmup and {QUICK_MAX_RUNS} runs")
        base["runs"] = min(base["runs"], QUICK_MAX_RUNS)
        base["warmup"] = min(base["warmup"], QUICK_MAX_WARMUP)
    if device_kind == "cpu":
        clamped = sorted({min(b, CPU_MAX_BATCH) for b in base["batch_sizes"]})
        if clamped != sorted(set(base["batch_sizes"])):
            adjusted.append(f"cpu: batch sizes clamped to <= {CPU_MAX_BATCH}")
        base["batch_sizes"] = clamped
        if base["runs"] > CPU_MAX_RUNS[level] or base["warmup"] > CPU_MAX_WARMUP[level]:
            adjusted.append(f"cpu: at most {CPU_MAX_WARMUP[level]} warmup and "
                            f"{CPU_MAX_RUNS[level]} runs")
        base["runs"] = min(base["runs"], CPU_MAX_RUNS[level])
        base["warmup"] = min(base["warmup"], CPU_MAX_WARMUP[level])
        adjusted.append("cpu: small model variants (resnet-small 64x64, transformer-small)")
    modes = ["eager"] + [f"compile-{m}" for m in dict.fromkeys(base["compile_modes"])]
    if base["max_autotune"] and "compile-max-autotune" not in modes:
        modes.append("compile-max-autotune")
    modes += ["script", "trace"]
    base["modes"] = modes
    base["adjusted"] = adjusted
    base["compile_cache"] = ("fresh inductor/triton cache per probe run: compile_s is cold for the "
                             "first compile mode of each model; later modes may reuse its kernels")
    return base


# --------------------------------------------------------------------------- env


def _first_line(text):
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def error_line(exc):
    """One line naming an exception: "Type: first line" (+ next line when the first ends in ':')."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if msg.endswith(":") and len(lines) > 1:
        msg = f"{msg} {lines[1]}"
    if len(msg) > 400:
        msg = msg[:397] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _run_quiet(argv, timeout=10):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout, text=True)
        return proc.returncode, proc.stdout
    except (OSError, subprocess.SubprocessError):
        return None, ""


def driver_version():
    if shutil.which("nvidia-smi"):
        rc, out = _run_quiet(["nvidia-smi", "--query-gpu=driver_version",
                              "--format=csv,noheader"], timeout=15)
        if rc == 0 and _first_line(out):
            return _first_line(out)
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
    t = torch
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


# --------------------------------------------------------------------------- checks


def _check(name, status, message, details=None):
    c = {"name": name, "status": status, "message": message}
    if details is not None:
        c["details"] = details
    return c


def env_checks(env, cfg, device):
    expect = cfg.get("expect") or {}
    checks = []
    tv = env["torch"]["version"]
    if expect.get("torch"):
        checks.append(_check("torch version", *compare_torch_version(expect["torch"], tv)))
    else:
        checks.append(_check("torch version", "skip", f"no expected torch version (have {tv})"))

    have_cuda = env["torch"]["cuda"]
    if "cuda" in expect:
        want = expect["cuda"]
        if want is None:
            ok = have_cuda is None
            msg = ("torch is a CPU build as expected" if ok
                   else f"torch built for CUDA {have_cuda}, expected a CPU build")
        else:
            wv, hv = parse_version(want), parse_version(have_cuda)
            ok = bool(hv and wv and hv["major"] == wv["major"]
                      and (wv["minor"] is None or hv["minor"] == wv["minor"]))
            msg = (f"torch built for CUDA {have_cuda} as expected" if ok else
                   f"torch built for CUDA {have_cuda or 'none (CPU build)'}, expected CUDA {want}")
        checks.append(_check("cuda version", "pass" if ok else "fail", msg))
    else:
        checks.append(_check("cuda version", "skip", f"no expected CUDA version (torch has {have_cuda})"))

    gpus = env["gpus"]
    if expect.get("gpu_required"):
        if env["cuda_available"] and gpus:
            checks.append(_check("gpu available", "pass", f"{len(gpus)} GPU(s) visible to torch"))
        elif not have_cuda:
            checks.append(_check("gpu available", "fail", "GPU required but torch is a CPU build"))
        else:
            checks.append(_check("gpu available", "fail",
                                 f"GPU required but torch.cuda.is_available() is False "
                                 f"(driver {env['driver_version'] or 'not found'})"))
    else:
        checks.append(_check("gpu available", "skip",
                             f"GPU not required ({len(gpus)} visible)"))
    want_gpus = cfg.get("gpus", "all")
    if _is_int(want_gpus) and want_gpus > 0:
        if len(gpus) >= want_gpus:
            checks.append(_check("gpu count", "pass", f"{len(gpus)} GPU(s) visible, {want_gpus} wanted"))
        else:
            checks.append(_check("gpu count", "fail", f"only {len(gpus)} GPU(s) visible, {want_gpus} wanted"))

    arch = env["arch_list"]
    if not gpus:
        checks.append(_check("gpu arch coverage", "skip", "no GPU visible"))
    else:
        bad = []
        for g in gpus:
            cap = g.get("capability")
            if not cap:
                bad.append(f"GPU {g['index']} capability unknown")
                continue
            major, minor = (int(x) for x in cap.split("."))
            if not capability_covered((major, minor), arch):
                bad.append(f"GPU {g['index']} capability {cap} not in arch list {_arch_span(arch)}")
        if bad:
            checks.append(_check("gpu arch coverage", "fail", "; ".join(bad)))
        else:
            caps = sorted({g["capability"] for g in gpus})
            checks.append(_check("gpu arch coverage", "pass",
                                 f"capability {', '.join(caps)} covered by {_arch_span(arch)}"))

    checks.append(_cudnn_check(env))
    checks.extend(_wheel_checks(env))
    checks.extend(_compiler_checks(env, device))
    checks.extend(_drift_checks(env, expect))
    return checks


def _cudnn_check(env):
    t = torch
    try:
        available = bool(t.backends.cudnn.is_available())
    except Exception:
        available = False
    if not available or not env.get("cudnn"):
        return _check("cudnn", "skip", "cuDNN not available in this torch build")
    try:
        runtime = None
        cc = getattr(t._C, "_cudnn", None)
        if cc is not None and hasattr(cc, "getRuntimeVersion"):
            runtime = tuple(int(x) for x in cc.getRuntimeVersion())
        if runtime is None:
            runtime = cudnn_int_to_tuple(env["cudnn"])
        compiled = tuple(int(x) for x in cc.getCompileVersion()) if cc is not None else None
    except Exception as exc:
        return _check("cudnn", "fail", f"cannot read cuDNN versions: {error_line(exc)}")
    rs = ".".join(map(str, runtime))
    if compiled is None:
        return _check("cudnn", "warn", f"cuDNN runtime {rs}; compile-time version unknown")
    cs = ".".join(map(str, compiled))
    if runtime == compiled:
        return _check("cudnn", "pass", f"cuDNN runtime {rs} == compile-time {cs}")
    if runtime[0] == compiled[0] and runtime > compiled:
        return _check("cudnn", "warn", f"cuDNN runtime {rs} is newer than compile-time {cs} "
                                       f"(same major, expected to work)")
    return _check("cudnn", "fail", f"cuDNN runtime {rs} does not match compile-time {cs}")


def _wheel_checks(env):
    pip = env["packages"]["pip"]
    out = []
    for lib, prefix, have in (("cudnn", "nvidia-cudnn", env.get("cudnn_version")),
                              ("nccl", "nvidia-nccl", env.get("nccl"))):
        name = f"{lib} wheel"
        wheels = {k: v for k, v in pip.items() if k == prefix or k.startswith(prefix + "-")}
        if not wheels:
            out.append(_check(name, "skip", f"no {prefix}-* wheel installed"))
            continue
        if not have:
            out.append(_check(name, "warn", f"{', '.join(f'{k} {v}' for k, v in wheels.items())} "
                                            f"installed but torch reports no {lib} version"))
            continue
        hv = parse_version(have)
        bad = []
        for k, v in wheels.items():
            wv = parse_version(v)
            if not wv or (wv["major"], wv["minor"]) != (hv["major"], hv["minor"]):
                bad.append(f"{k} {v}")
        if bad:
            out.append(_check(name, "fail", f"torch loads {lib} {have} but wheel "
                                            f"{', '.join(bad)} is installed (major.minor differ)"))
        else:
            out.append(_check(name, "pass", f"torch {lib} {have} matches wheel "
                                            f"{', '.join(f'{k} {v}' for k, v in wheels.items())}"))
    return out


def inductor_cxx_candidates():
    try:
        import torch._inductor.config as icfg

        cands = icfg.cpp.cxx
        cands = list(cands) if isinstance(cands, (list, tuple)) else [cands]
    except Exception:
        cands = [os.environ.get("CXX", "g++")]
    return [c for c in cands if c]


def _compiler_checks(env, device):
    comp = env["compiler"]
    checks = []
    cands = inductor_cxx_candidates()
    comp["inductor_cxx_candidates"] = cands
    working = None
    for c in cands:
        rc, _ = _run_quiet([c, "--version"], timeout=30)
        if rc == 0:
            working = c
            break
    comp["inductor_cxx"] = working
    if working:
        checks.append(_check("c++ compiler", "pass",
                             f"inductor C++ compiler {shutil.which(working) or working} works"))
    else:
        why = (f"CXX={comp['env_cxx']} not found or not working" if comp["env_cxx"]
               else "no working g++ on PATH")
        checks.append(_check("c++ compiler", "fail",
                             f"no C++ compiler ({why}; inductor tries {', '.join(cands) or 'nothing'}): "
                             f"torch.compile cannot work in this image"))
    if device.startswith("cuda"):
        if comp["cc"]:
            checks.append(_check("c compiler", "pass", f"C compiler for Triton: {comp['cc']}"))
        else:
            why = f"CC={comp['env_cc']} not found" if comp["env_cc"] else "no gcc/clang on PATH"
            checks.append(_check("c compiler", "fail",
                                 f"no C compiler for Triton ({why}): torch.compile cannot build GPU kernels"))
    ph = env["python_headers"]
    if ph["present"]:
        checks.append(_check("python headers", "pass", f"Python.h found in {ph['include_dir']}"))
    else:
        checks.append(_check("python headers", "fail",
                             f"Python.h missing from {ph['include_dir']}: torch.compile cannot "
                             f"build kernels (install the python{sys.version_info[0]}."
                             f"{sys.version_info[1]} dev headers)"))
    return checks


def _drift_checks(env, expect):
    pk = expect.get("packages")
    out = []
    if not pk or pk.get("pip") is None:
        out.append(_check("pip drift", "skip", "no expected pip package set"))
    else:
        expected = pk["pip"]
        exp_names = {normalize_name(k) for k in expected}
        # pip tooling and packages that conda installed (the conda set covers those) are not
        # extra unless the expected set names them
        ignore = [n for n in list(PIP_TOOLING) + env["packages"].get("pip_from_conda", [])
                  if normalize_name(n) not in exp_names]
        diff = diff_packages(expected, env["packages"]["pip"], ignore=ignore)
        bad = any(diff.values())
        out.append(_check("pip drift", "fail" if bad else "pass",
                          _drift_message("pip", diff), diff if bad else None))
    if pk and pk.get("conda") is not None:
        installed = env["packages"]["conda"]
        if installed is None:
            out.append(_check("conda drift", "fail",
                              f"expected conda packages but {sys.prefix} has no conda-meta"))
        else:
            # installed values are "version-build": compare the version alone unless the
            # expected value names a build too
            exp = pk["conda"]
            extra = {k: installed[k] for k in sorted(installed) if k not in exp}
            missing = {k: exp[k] for k in sorted(exp) if k not in installed}
            different = {}
            for k in sorted(exp):
                if k not in installed:
                    continue
                have = installed[k] if "-" in exp[k] else installed[k].split("-", 1)[0]
                if have != exp[k]:
                    different[k] = {"expected": exp[k], "installed": installed[k]}
            diff = {"extra": extra, "missing": missing, "different": different}
            bad = any(diff.values())
            out.append(_check("conda drift", "fail" if bad else "pass",
                              _drift_message("conda", diff), diff if bad else None))
    return out


# --------------------------------------------------------------------------- models


_MODEL_CLASSES = None


def _model_classes():
    """The probe's nn.Module classes, defined once (torch is imported lazily)."""
    global _MODEL_CLASSES
    if _MODEL_CLASSES is None:
        _MODEL_CLASSES = _define_model_classes()
    return _MODEL_CLASSES


def _define_model_classes():
    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))
            else:
                self.down = nn.Identity()

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + self.down(x))

    class ResNet(nn.Module):
        """ResNet-50-shaped CNN (bottleneck blocks), random init, no downloads."""

        def __init__(self, layers, width=64, classes=1000):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.MaxPool2d(3, stride=2, padding=1))
            blocks = []
            cin = width
            for i, n in enumerate(layers):
                w = width * (2 ** i)
                for j in range(n):
                    blocks.append(Bottleneck(cin, w, 2 if (j == 0 and i > 0) else 1))
                    cin = w * 4
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.fc(torch.flatten(self.pool(x), 1))

    class TransformerBlock(nn.Module):
        """Pre-norm transformer block: MultiheadAttention + LayerNorm + MLP."""

        def __init__(self, d, heads):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.ln2 = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            h = self.ln1(x)
            a, _ = self.attn(h, h, h, need_weights=False)
            x = x + a
            return x + self.mlp(self.ln2(x))

    class Branchy(nn.Module):
        """Data-dependent control flow: script keeps both branches, trace freezes one."""

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 16)

        def forward(self, x):
            if bool(x.sum() > 0):
                return torch.relu(self.lin(x)) + 1.0
            else:
                return torch.tanh(self.lin(x)) - 1.0

    return {"ResNet": ResNet, "TransformerBlock": TransformerBlock, "Branchy": Branchy}


def _randomize_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + 0.5 * torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))


def build_model(key, device_kind, seed):
    shape = MODEL_SHAPES[(key, device_kind)]
    classes = _model_classes()
    torch.manual_seed(seed)
    if key == "resnet50":
        model = classes["ResNet"](shape["layers"], shape["width"], shape["classes"])
        _randomize_bn(model, seed)

        def make_input(batch, g):
            return torch.randn(batch, 3, shape["image"], shape["image"], generator=g)
    else:
        model = classes["TransformerBlock"](shape["d"], shape["heads"])

        def make_input(batch, g):
            return torch.randn(batch, shape["seq"], shape["d"], generator=g)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return shape["name"], model, make_input


# --------------------------------------------------------------------------- benchmarks


def _torch_dtype(name):
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return sorted_vals[int(k)]
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def _first_tensor(out):
    if isinstance(out, (tuple, list)):
        return _first_tensor(out[0])
    return out


def compare_outputs(out, ref, dtype_name):
    """(max_abs_err, max_rel_err, agree); rel is normalized by max|ref|; NaN/inf never agree."""
    o = _first_tensor(out).detach().float().cpu()
    r = _first_tensor(ref).detach().float().cpu()
    if o.shape != r.shape:
        return None, None, False
    if not bool(torch.isfinite(o).all()) or not bool(torch.isfinite(r).all()):
        return None, None, False
    abs_err = float((o - r).abs().max()) if o.numel() else 0.0
    scale = float(r.abs().max()) if r.numel() else 0.0
    rel = abs_err / max(scale, 1e-12)
    return abs_err, rel, rel <= TOLERANCE[dtype_name]


class _Timer:
    def __init__(self, device):
        self.cuda = device.startswith("cuda")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def time_calls(self, call, n):
        """Per-call milliseconds for n calls."""
        if self.cuda:
            evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                   for _ in range(n)]
            out = None
            for s, e in evs:
                s.record()
                out = call()
                e.record()
            torch.cuda.synchronize()
            return [s.elapsed_time(e) for s, e in evs], out
        times, out = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            out = call()
            times.append((time.perf_counter() - t0) * 1000.0)
        return times, out


def _dynamo_counters():
    try:
        from torch._dynamo.utils import counters

        return counters
    except Exception:
        return None


def _reset_dynamo():
    try:
        torch._dynamo.reset()
    except Exception:
        pass
    c = _dynamo_counters()
    if c is not None:
        c.clear()


def _frames_ok(counters):
    return int(counters["frames"]["ok"]) if counters is not None else 0


def run_mode(mode, model, x, ref, dtype_name, batch, device, settings, jit_warnings):
    """One benchmark row. Never raises: failures become status "error"."""
    row = {"model": None, "mode": mode, "dtype": dtype_name, "batch": batch, "device": device,
           "compile_s": None, "median_ms": None, "p10_ms": None, "p90_ms": None,
           "spread_pct": None, "throughput_per_s": None, "peak_mem_bytes": None,
           "max_abs_err": None, "max_rel_err": None, "agree": None, "graph_breaks": None,
           "recompiles": None, "status": "ok", "error": None}
    timer = _Timer(device)
    is_compile = mode.startswith("compile-")
    cudagraphs = mode in ("compile-reduce-overhead", "compile-max-autotune")
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    counters = _dynamo_counters() if is_compile else None
    fn = None
    try:
        if timer.cuda:
            torch.cuda.reset_peak_memory_stats()
        if is_compile:
            _reset_dynamo()
        t0 = time.perf_counter()
        if mode == "eager":
            fn = model
        elif is_compile:
            fn = torch.compile(model, mode=mode[len("compile-"):])
        elif mode in ("script", "trace"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with torch.no_grad():
                    if mode == "script":
                        fn = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
                    else:
                        fn = torch.jit.trace(model, (x,))
            _add_warnings(jit_warnings, caught)
        else:
            raise ValueError(f"unknown mode {mode}")

        def call():
            if cudagraphs and timer.cuda and mark_step is not None:
                mark_step()
            return fn(x)

        with torch.inference_mode():
            out = call()
            timer.sync()
            row["compile_s"] = round(time.perf_counter() - t0, 4)
            frames_after_first = _frames_ok(counters)
            for _ in range(settings["warmup"]):
                call()
            timer.sync()
            times, out = timer.time_calls(call, settings["runs"])
            out = _first_tensor(out).clone() if cudagraphs else _first_tensor(out)
        times.sort()
        med = statistics.median(times)
        p10, p90 = _percentile(times, 0.1), _percentile(times, 0.9)
        row.update(median_ms=round(med, 4), p10_ms=round(p10, 4), p90_ms=round(p90, 4),
                   spread_pct=round((p90 - p10) / med * 100.0, 2) if med > 0 else None,
                   throughput_per_s=round(batch / (med / 1000.0), 2) if med > 0 else None)
        if timer.cuda:
            row["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
        if counters is not None:
            row["graph_breaks"] = int(sum(counters["graph_break"].values()))
            row["recompiles"] = max(0, _frames_ok(counters) - frames_after_first)
        if ref is not None:
            abs_err, rel_err, agree = compare_outputs(out, ref, dtype_name)
            row.update(max_abs_err=abs_err, max_rel_err=rel_err, agree=agree)
        del out
    except Exception as exc:
        row["status"] = "error"
        row["error"] = error_line(exc)
        if counters is not None:
            try:
                row["graph_breaks"] = int(sum(counters["graph_break"].values()))
            except Exception:
                pass
    finally:
        fn = None
        if is_compile:
            _reset_dynamo()
        gc.collect()
        if timer.cuda:
            try:
                torch.cuda.empty_cache()
            except Exception:
                pass
    return row


def run_benchmarks(settings, device, jit_warnings):
    rows = []
    device_kind = "cuda" if device.startswith("cuda") else "cpu"
    for mi, key in enumerate(settings["models"]):
        for dtype_name in settings["dtypes"]:
            try:
                name, model, make_input = build_model(key, device_kind, seed=1234 + mi)
                model = model.to(device=device, dtype=_torch_dtype(dtype_name))
            except Exception as exc:
                for batch in settings["batch_sizes"]:
                    for mode in settings["modes"]:
                        rows.append({"model": MODEL_SHAPES[(key, device_kind)]["name"], "mode": mode,
                                     "dtype": dtype_name, "batch": batch, "device": device,
                                     "status": "error", "error": error_line(exc)})
                continue
            for batch in settings["batch_sizes"]:
                g = torch.Generator().manual_seed(4321 + batch)
                x = make_input(batch, g).to(device=device, dtype=_torch_dtype(dtype_name))
                try:  # reference output: eager, first call
                    with torch.inference_mode():
                        ref = _first_tensor(model(x)).clone()
                except Exception:
                    ref = None  # the eager row records the error
                for mode in settings["modes"]:
                    print(f"[smoke] {name} {dtype_name} b{batch} {mode}", file=sys.stderr, flush=True)
                    row = run_mode(mode, model, x, ref, dtype_name, batch, device, settings,
                                   jit_warnings)
                    row["model"] = name
                    row["tolerance"] = TOLERANCE[dtype_name]
                    rows.append(row)
                del x, ref
            del model
            gc.collect()
    return rows


def benchmark_checks(rows):
    checks = []

    def describe(r):
        return f"{r['mode']} on {r['model']} {r['dtype']} b{r['batch']}"

    def summarize(name, selected, what, fail_status="fail"):
        if not selected:
            return _check(name, "skip", f"no {what} benchmark rows")
        errors = [r for r in selected if r["status"] != "ok"]
        wrong = [r for r in selected if r["status"] == "ok" and r.get("agree") is False]
        if errors:
            r = errors[0]
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            return _check(name, fail_status, f"{what} failed: {describe(r)}: {r['error']}{more}")
        if wrong:
            r = wrong[0]
            more = f" (+{len(wrong) - 1} more)" if len(wrong) > 1 else ""
            err = r.get("max_rel_err")
            errs = f"rel err {err:.3g}" if isinstance(err, float) else "non-finite output"
            return _check(name, fail_status,
                          f"{what} disagrees with eager: {describe(r)} {errs} > tol "
                          f"{r.get('tolerance')}{more}")
        modes = sorted({r["mode"] for r in selected})
        return _check(name, "pass", f"{what} ok in {len(selected)} runs ({', '.join(modes)})")

    checks.append(summarize("eager", [r for r in rows if r["mode"] == "eager"], "eager inference"))
    checks.append(summarize("torch.compile", [r for r in rows if r["mode"].startswith("compile-")],
                            "torch.compile"))
    checks.append(summarize("torchscript modes", [r for r in rows if r["mode"] in ("script", "trace")],
                            "torch.jit script/trace"))
    return checks


# --------------------------------------------------------------------------- torchscript round-trip

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


def _add_warnings(sink, caught):
    for w in caught:
        text = f"{w.category.__name__}: {_first_line(w.message)}"
        if text not in sink:
            sink.append(text)


def torchscript_roundtrip(jit_warnings, workdir):
    res = {"ok": False, "error": None, "fresh_process": False, "script": None, "trace": None,
           "warnings": jit_warnings}
    t0 = time.perf_counter()
    try:
        Branchy = _model_classes()["Branchy"]
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
        _add_warnings(jit_warnings, caught)
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
            why = (child or {}).get("error") or _first_line(proc.stderr) or f"exit {proc.returncode}"
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
    if ts["ok"]:
        froze = ts["trace"]["froze_branch"]
        return _check("torchscript round-trip", "pass",
                      "scripted module saved, loaded in a fresh process, both branches match"
                      + ("; trace froze the traced branch as expected" if froze else
                         "; note: trace did not freeze the branch"))
    if not hasattr(torch, "jit"):
        return _check("torchscript round-trip", "warn", "torch.jit is not available in this torch")
    return _check("torchscript round-trip", "fail", f"TorchScript round-trip failed: {ts['error']}")


# --------------------------------------------------------------------------- main


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(f"bad arguments: {message}")


def parse_args(argv):
    p = _Parser(prog="smoke.py", description="envctl in-image smoke probe (one JSON object on stdout)")
    p.add_argument("--config", metavar="PATH", help='config JSON file, or "-" for stdin')
    p.add_argument("--level", choices=LEVELS, help="override the config's level")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="same as --level quick")
    g.add_argument("--full", action="store_true", help="same as --level full")
    p.add_argument("--checks-only", action="store_true",
                   help="environment checks only: no benchmarks, no TorchScript round-trip")
    p.add_argument("--indent", type=int, default=None, help="pretty-print the JSON")
    return p.parse_args(argv)


def load_config(path):
    if path is None:
        return {}
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as fh:
                text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}")
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config is not valid JSON: {exc}")


def _sanitize(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def _emit(fd, obj, indent):
    data = (json.dumps(_sanitize(obj), indent=indent, allow_nan=False) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _import_torch():
    global torch, nn
    import torch as _torch
    import torch.nn as _nn

    torch, nn = _torch, _nn


def select_device(cfg, env):
    gpus = cfg.get("gpus", "all")
    if gpus == "none" or gpus == 0:
        return "cpu"
    if env.get("cuda_available") and env.get("gpus"):
        return "cuda:0"
    return "cpu"


def probe(cfg, level, notes, checks_only=False):
    """Run everything; returns (result dict, exit code)."""
    start = time.perf_counter()
    result = {"schema": SCHEMA, "ok": False, "level": level, "duration_s": None, "device": None,
              "settings": None, "env": None, "checks": [], "benchmarks": [], "torchscript": None}
    if notes:
        result["config_notes"] = notes
    env = collect_env_basic()
    result["env"] = env
    try:
        _import_torch()
    except Exception as exc:
        result["checks"].append(_check("torch import", "fail", f"cannot import torch: {error_line(exc)}"))
        result["duration_s"] = round(time.perf_counter() - start, 3)
        return result, EXIT_FAIL
    checks = result["checks"]
    checks.append(_check("torch import", "pass",
                         f"torch {torch.__version__} from {os.path.dirname(torch.__file__)}"))
    collect_env_torch(env)
    device = select_device(cfg, env)
    result["device"] = device
    checks.extend(env_checks(env, cfg, device))

    if checks_only:
        result["checks_only"] = True
        result["ok"] = not any(c["status"] == "fail" for c in checks)
        result["duration_s"] = round(time.perf_counter() - start, 3)
        return result, (EXIT_OK if result["ok"] else EXIT_FAIL)
    settings = resolve_settings(cfg, level, "cuda" if device.startswith("cuda") else "cpu")
    result["settings"] = settings
    jit_warnings = []
    workdir = tempfile.mkdtemp(prefix="envctl-smoke-")
    try:
        try:
            rows = run_benchmarks(settings, device, jit_warnings)
        except Exception as exc:  # the runner itself broke: keep going
            rows = []
            checks.append(_check("benchmarks", "fail", f"benchmark runner crashed: {error_line(exc)}"))
        result["benchmarks"] = rows
        checks.extend(benchmark_checks(rows))
        ts = torchscript_roundtrip(jit_warnings, workdir)
        result["torchscript"] = ts
        checks.append(torchscript_check(ts))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["ok"] = not any(c["status"] == "fail" for c in checks)
    result["duration_s"] = round(time.perf_counter() - start, 3)
    return result, (EXIT_OK if result["ok"] else EXIT_FAIL)


def main(argv=None):
    # Keep stdout for the one JSON object: fd 1 (and sys.stdout) now point at stderr, so
    # anything torch, its C++ side or its subprocesses print lands on stderr.
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    indent = None
    cache_dir = None
    try:
        try:
            args = parse_args(sys.argv[1:] if argv is None else argv)
            indent = args.indent
            cfg, notes = validate_config(load_config(args.config))
        except ConfigError as exc:
            _emit(out_fd, {"schema": SCHEMA, "ok": False, "error": str(exc)}, indent)
            return EXIT_CONFIG
        level = "quick" if args.quick else "full" if args.full else args.level or cfg.get("level", "standard")
        # Cold compile in a private cache: measures compile time honestly and really
        # exercises the compiler instead of loading kernels an earlier run built.
        cache_dir = tempfile.mkdtemp(prefix="envctl-smoke-cache-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache_dir, "inductor")
        os.environ["TRITON_CACHE_DIR"] = os.path.join(cache_dir, "triton")
        try:
            result, code = probe(cfg, level, notes, checks_only=args.checks_only)
        except Exception as exc:
            result = {"schema": SCHEMA, "ok": False, "level": level,
                      "error": f"probe crashed: {error_line(exc)}",
                      "checks": [_check("probe", "fail", f"probe crashed: {error_line(exc)}")]}
            code = EXIT_FAIL
        _emit(out_fd, result, indent)
        return code
    finally:
        sys.stderr.flush()
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
