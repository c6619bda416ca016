"""Version and CUDA-architecture arithmetic for the smoke probe (pure functions).

torch, CUDA, cuDNN and NCCL version parsing and comparison, PEP 440-ish pip version
equality, package-set diffs, and whether a GPU's compute capability is covered by torch's
arch list. Part of the in-image smoke probe (see smoke.py): standard library only,
Python >= 3.9.
"""
from __future__ import annotations

import re

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


def compare_cuda_version(expected, cuda, hip, torch_version):
    """(status, message) comparing torch.version.cuda with the spec's CUDA ("12.8", or None for cpu).

    The minor is compared where the expected version names one. A ROCm build (torch.version.hip)
    has no torch.version.cuda either, and is no CPU build.
    """
    if cuda:
        built = f"built for CUDA {cuda}"
    elif hip:
        built = f"a ROCm build (HIP {hip})"
    else:
        built = "a CPU build (torch.version.cuda is None)"
    if expected is None:
        if not cuda and not hip:
            return "pass", f"torch {torch_version} is a CPU build as expected"
        return "fail", f"torch {torch_version} is {built}, expected a CPU build"
    want, have = parse_version(expected), parse_version(cuda)
    if want is None:
        return "fail", f"expected CUDA version {expected!r} is not a version"
    if have and have["major"] == want["major"] and want["minor"] in (None, have["minor"]):
        return "pass", f"torch built for CUDA {cuda} as expected"
    return "fail", f"torch {torch_version} is {built}, expected CUDA {expected}"


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


def arch_span(arch_list):
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

