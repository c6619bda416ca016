"""The environment checks of the smoke probe: the report's judgement of the environment.

torch and CUDA versions against the expected ones, GPU presence, count and arch coverage,
cuDNN runtime vs compile-time, cuDNN/NCCL wheels vs what torch loads, the compilers and
headers torch.compile needs, and pip/conda drift from the expected package sets.
Part of the in-image smoke probe (see smoke.py): standard library and torch only (torch
imported lazily), Python >= 3.9.
"""
from __future__ import annotations

import os
import shutil
import sys

from probe_envinfo import run_quiet
from probe_report import check, error_line
from probe_versions import (arch_span, capability_covered, compare_cuda_version, compare_torch_version,
                            cudnn_int_to_tuple, diff_packages, normalize_name, parse_arch, parse_version)

# pip/setuptools/wheel are not counted as drift unless the expected set names them.
PIP_TOOLING = ("pip", "setuptools", "wheel")


def env_checks(env, cfg, device):
    """The environment's checks, in report order, for the config and the chosen device."""
    expect = cfg.get("expect") or {}
    checks = []
    tv = env["torch"]["version"]
    if expect.get("torch"):
        checks.append(check("torch version", *compare_torch_version(expect["torch"], tv)))
    else:
        checks.append(check("torch version", "skip", f"no expected torch version (have {tv})"))

    have_cuda = env["torch"]["cuda"]
    if "cuda" in expect:
        status, msg = compare_cuda_version(expect["cuda"], have_cuda, env["torch"].get("hip"), tv)
        checks.append(check("cuda version", status, msg))
    else:
        checks.append(check("cuda version", "skip", f"no expected CUDA version (torch has {have_cuda})"))

    gpus = env["gpus"]
    if expect.get("gpu_required"):
        if env["cuda_available"] and gpus:
            checks.append(check("gpu available", "pass", f"{len(gpus)} GPU(s) visible to torch"))
        elif not have_cuda:
            checks.append(check("gpu available", "fail", "GPU required but torch is a CPU build"))
        else:
            checks.append(check("gpu available", "fail",
                                f"GPU required but no GPU visible: torch.cuda.is_available() is False "
                                f"(driver {env['driver_version'] or 'not found'}); run on a GPU host with "
                                f"--gpus all, or --gpus none for the checks that need no GPU"))
    elif gpus:
        checks.append(check("gpu available", "skip", f"GPU not required ({len(gpus)} visible)"))
    else:
        checks.append(check("gpu available", "skip",
                            "no GPU visible (not required); the GPU checks need a GPU host and --gpus all"))
    want_gpus = cfg.get("gpus", "all")
    if isinstance(want_gpus, int) and not isinstance(want_gpus, bool) and want_gpus > 0:
        if len(gpus) >= want_gpus:
            checks.append(check("gpu count", "pass", f"{len(gpus)} GPU(s) visible, {want_gpus} wanted"))
        else:
            checks.append(check("gpu count", "fail", f"only {len(gpus)} GPU(s) visible, {want_gpus} wanted"))

    arch = env["arch_list"]
    if not gpus:
        checks.append(check("gpu arch coverage", "skip", "no GPU visible"))
    else:
        bad = []
        for g in gpus:
            cap = g.get("capability")
            if not cap:
                bad.append(f"GPU {g['index']} capability unknown")
                continue
            major, minor = (int(x) for x in cap.split("."))
            if not capability_covered((major, minor), arch):
                bad.append(f"GPU {g['index']} capability {cap} not in arch list {arch_span(arch)}")
        if bad:
            checks.append(check("gpu arch coverage", "fail", "; ".join(bad)))
        else:
            caps = sorted({g["capability"] for g in gpus})
            checks.append(check("gpu arch coverage", "pass",
                                f"capability {', '.join(caps)} covered by {arch_span(arch)}"))

    want_arch = expect.get("arch_list")
    if want_arch and have_cuda:
        checks.append(_arch_list_check(want_arch, arch))
    checks.append(_cudnn_check(env))
    checks.extend(_wheel_checks(env))
    checks.extend(_compiler_checks(env, device))
    checks.extend(_drift_checks(env, expect))
    return checks


def _arch_list_check(want, arch):
    """The compute capabilities the release matrix promises, against the ones compiled into torch."""
    if not arch:
        return check("arch list", "warn", "torch reports no compiled CUDA arch list")
    compiled = {(p[1], p[2]) for p in (parse_arch(a) for a in arch) if p is not None and p[0] == "sm"}
    missing = [cap for cap in want if tuple(int(x) for x in cap.split(".")) not in compiled]
    if missing:
        return check("arch list", "fail", f"capability {', '.join(missing)} missing from torch's arch list "
                                          f"{arch_span(arch)} (the release matrix lists {', '.join(want)})")
    return check("arch list", "pass", f"{', '.join(want)} all compiled in ({arch_span(arch)})")


def _cudnn_check(env):
    try:
        import torch as t

        available = bool(t.backends.cudnn.is_available())
    except Exception:
        available = False
    if not available or not env.get("cudnn"):
        return check("cudnn", "skip", "cuDNN not available in this torch build")
    try:
        runtime = None
        cc = getattr(t._C, "_cudnn", None)
        if cc is not None and hasattr(cc, "getRuntimeVersion"):
            runtime = tuple(int(x) for x in cc.getRuntimeVersion())
        if runtime is None:
            runtime = cudnn_int_to_tuple(env["cudnn"])
        compiled = tuple(int(x) for x in cc.getCompileVersion()) if cc is not None else None
    except Exception as exc:
        return check("cudnn", "fail", f"cannot read cuDNN versions: {error_line(exc)}")
    rs = ".".join(map(str, runtime))
    if compiled is None:
        return check("cudnn", "warn", f"cuDNN runtime {rs}; compile-time version unknown")
    cs = ".".join(map(str, compiled))
    if runtime == compiled:
        return check("cudnn", "pass", f"cuDNN runtime {rs} == compile-time {cs}")
    if runtime[0] == compiled[0] and runtime > compiled:
        return check("cudnn", "warn", f"cuDNN runtime {rs} is newer than compile-time {cs} "
                                      f"(same major, expected to work)")
    return check("cudnn", "fail", f"cuDNN runtime {rs} does not match compile-time {cs}")


def _wheel_checks(env):
    pip = env["packages"]["pip"]
    out = []
    for lib, prefix, have in (("cudnn", "nvidia-cudnn", env.get("cudnn_version")),
                              ("nccl", "nvidia-nccl", env.get("nccl"))):
        name = f"{lib} wheel"
        wheels = {k: v for k, v in pip.items() if k == prefix or k.startswith(prefix + "-")}
        if not wheels:
            out.append(check(name, "skip", f"no {prefix}-* wheel installed"))
            continue
        if not have:
            out.append(check(name, "warn", f"{', '.join(f'{k} {v}' for k, v in wheels.items())} "
                                           f"installed but torch reports no {lib} version"))
            continue
        hv = parse_version(have)
        bad = []
        for k, v in wheels.items():
            wv = parse_version(v)
            if not wv or (wv["major"], wv["minor"]) != (hv["major"], hv["minor"]):
                bad.append(f"{k} {v}")
        if bad:
            out.append(check(name, "fail", f"torch loads {lib} {have} but wheel "
                                           f"{', '.join(bad)} is installed (major.minor differ)"))
        else:
            out.append(check(name, "pass", f"torch {lib} {have} matches wheel "
                                           f"{', '.join(f'{k} {v}' for k, v in wheels.items())}"))
    return out


def inductor_cxx_candidates():
    """The C++ compilers inductor would try, from torch._inductor.config (else $CXX or g++)."""
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
        rc, _ = run_quiet([c, "--version"], timeout=30)
        if rc == 0:
            working = c
            break
    comp["inductor_cxx"] = working
    if working:
        checks.append(check("c++ compiler", "pass",
                            f"inductor C++ compiler {shutil.which(working) or working} works"))
    else:
        why = (f"CXX={comp['env_cxx']} not found or not working" if comp["env_cxx"]
               else "no working g++ on PATH")
        checks.append(check("c++ compiler", "fail",
                            f"no C++ compiler ({why}; inductor tries {', '.join(cands) or 'nothing'}): "
                            f"torch.compile cannot work in this image"))
    if device.startswith("cuda"):
        if comp["cc"]:
            checks.append(check("c compiler", "pass", f"C compiler for Triton: {comp['cc']}"))
        else:
            why = f"CC={comp['env_cc']} not found" if comp["env_cc"] else "no gcc/clang on PATH"
            checks.append(check("c compiler", "fail",
                                f"no C compiler for Triton ({why}): torch.compile cannot build GPU kernels"))
    ph = env["python_headers"]
    if ph["present"]:
        checks.append(check("python headers", "pass", f"Python.h found in {ph['include_dir']}"))
    else:
        checks.append(check("python headers", "fail",
                            f"Python.h missing from {ph['include_dir']}: torch.compile cannot "
                            f"build kernels (install the python{sys.version_info[0]}."
                            f"{sys.version_info[1]} dev headers)"))
    return checks


def _drift_checks(env, expect):
    pk = expect.get("packages")
    out = []
    if not pk or pk.get("pip") is None:
        out.append(check("pip drift", "skip", "no expected pip package set"))
    else:
        expected = pk["pip"]
        exp_names = {normalize_name(k) for k in expected}
        # pip tooling and packages that conda installed (the conda set covers those) are not
        # extra unless the expected set names them
        ignore = [n for n in list(PIP_TOOLING) + env["packages"].get("pip_from_conda", [])
                  if normalize_name(n) not in exp_names]
        diff = diff_packages(expected, env["packages"]["pip"], ignore=ignore)
        bad = any(diff.values())
        out.append(check("pip drift", "fail" if bad else "pass",
                         _drift_message("pip", diff), diff if bad else None))
    if pk and pk.get("conda") is not None:
        installed = env["packages"]["conda"]
        if installed is None:
            out.append(check("conda drift", "fail",
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
            out.append(check("conda drift", "fail" if bad else "pass",
                             _drift_message("conda", diff), diff if bad else None))
    return out


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
