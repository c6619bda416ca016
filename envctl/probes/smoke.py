"""envctl in-image smoke probe.

Runs inside any image that has torch, with no envctl installed:

    python smoke.py [--config cfg.json | --config -] [--level quick|standard|full]
                    [--quick | --full] [--indent N]

Imports only the Python standard library and torch (torchvision is never imported).
Prints exactly one JSON object (schema "envctl.probe/1") on stdout; everything else,
torch's own output included, goes to stderr. Exit status: 0 when no check failed,
1 when a check failed, 2 on a bad config or bad arguments.

This file is the entry point: arguments, config validation, and the order in which the
probe runs. The work is done by its sibling modules, imported by plain name from this
file's folder (it is mounted read-only, so no bytecode is written):

    probe_report       check records, one-line errors, JSON output
    probe_versions     version and CUDA arch parsing and comparison
    probe_envinfo      the environment report (versions, GPUs, driver, compilers, packages)
    probe_checks       the environment checks (versions, GPUs, libraries, compilers, drift)
    probe_release      the checks of PyTorch's release smoke test (child: cuda_errors.py)
    probe_models       the benchmark and round-trip models
    probe_bench        benchmark settings and checks
    probe_runner       the benchmark runner: build every mode, time them side by side
    probe_timing       block timing, intervals and verdicts
    probe_machine      GPU clocks/temperature/power/throttling and CPU load around the timing
    probe_warm         warm compile: a second process reusing the compile caches
    probe_torchscript  the TorchScript round-trip (its child process is roundtrip.py)
    probe_tree         the environment's files against the build's layer manifests
    probe_multigpu     torch.distributed across the GPUs (child: multigpu_rank.py; NCCL log: probe_nccl)

Python >= 3.9 syntax only.
"""
from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # the probe folder is mounted read-only: no __pycache__

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the script's folder is normally sys.path[0]; not under -P or -I
    sys.path.insert(0, _HERE)

from probe_bench import COMPILE_MODES, DTYPES, benchmark_checks, resolve_settings  # noqa: E402
from probe_checks import env_checks  # noqa: E402
from probe_envinfo import collect_env_basic, collect_env_torch  # noqa: E402
from probe_machine import Monitor, public  # noqa: E402
from probe_models import MODELS  # noqa: E402
from probe_multigpu import CHECK_NAMES as MULTI_GPU_CHECKS, config_notes as multi_gpu_notes, multi_gpu_checks  # noqa: E402
from probe_release import compile_checks, release_checks  # noqa: E402
from probe_report import check, emit, error_line  # noqa: E402
from probe_runner import run_benchmarks  # noqa: E402
from probe_torchscript import (finish_roundtrip, start_roundtrip, torchscript_check,  # noqa: E402
                               wait_roundtrip)
from probe_tree import tree_check  # noqa: E402
from probe_warm import warm_compile  # noqa: E402

SCHEMA = "envctl.probe/1"
EXIT_OK = 0
EXIT_FAIL = 1
EXIT_CONFIG = 2

LEVELS = ("quick", "standard", "full")


class ConfigError(Exception):
    """Bad config or arguments: exit status 2."""


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
        if key not in ("expect", "gpus", "level", "benchmark", "multi_gpu"):
            notes.append(f"unknown config key {key!r} ignored")
    expect = cfg.get("expect") or {}
    if not isinstance(expect, dict):
        raise ConfigError("expect must be an object")
    for key in expect:
        if key not in ("torch", "cuda", "gpu_required", "packages", "env_tree", "arch_list"):
            notes.append(f"unknown expect key {key!r} ignored")
    for key in ("torch", "cuda", "env_tree"):
        if key in expect and expect[key] is not None and not isinstance(expect[key], str):
            raise ConfigError(f"expect.{key} must be a string or null")
    if expect.get("cuda") is not None and not re.fullmatch(r"\d+(\.\d+)?", expect["cuda"]):
        raise ConfigError(f"expect.cuda must be a CUDA version such as \"12.8\", or null for a CPU build "
                          f"(got {expect['cuda']!r})")
    arch_list = expect.get("arch_list")
    if arch_list is not None and not (isinstance(arch_list, list) and all(isinstance(a, str) for a in arch_list)):
        raise ConfigError("expect.arch_list must be a list of capability strings such as \"9.0\"")
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
    if cfg.get("multi_gpu") is not None:
        try:
            notes.extend(multi_gpu_notes(cfg["multi_gpu"]))
        except ValueError as exc:
            raise ConfigError(str(exc))
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
    """The config object from a JSON file, "-" (stdin) or None (empty config)."""
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


def _import_torch():
    import torch
    import torch.nn  # noqa: F401 - a torch whose nn cannot load fails the import check

    return torch


def select_device(cfg, env):
    """"cuda:0" when GPUs are allowed and torch sees one, else "cpu"."""
    gpus = cfg.get("gpus", "all")
    if gpus == "none" or gpus == 0:
        return "cpu"
    if env.get("cuda_available") and env.get("gpus"):
        return "cuda:0"
    return "cpu"


def _monitor(torch, device):
    """The machine-state sampler for the benchmark device (NVML handle by PCI bus id)."""
    if not device.startswith("cuda"):
        return Monitor(False)
    index = torch.cuda.current_device()
    bus = None
    try:
        p = torch.cuda.get_device_properties(index)
        bus = f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0"
    except Exception:
        pass
    return Monitor(True, index, bus)


def probe(cfg, level, notes, checks_only=False):
    """Run everything; returns (result dict, exit code)."""
    start = time.perf_counter()
    result = {"schema": SCHEMA, "ok": False, "level": level, "duration_s": None, "device": None,
              "settings": None, "env": None, "checks": [], "benchmarks": [], "torchscript": None,
              "multi_gpu": None}
    if notes:
        result["config_notes"] = notes
    env = collect_env_basic()
    result["env"] = env
    # Before torch is imported: nothing the probe does may show up as a changed file.
    tree = tree_check(sys.prefix, (cfg.get("expect") or {}).get("env_tree"))
    tree_s = time.perf_counter() - start
    try:
        torch = _import_torch()
    except Exception as exc:
        result["checks"].append(check("torch import", "fail", f"cannot import torch: {error_line(exc)}"))
        result["duration_s"] = round(time.perf_counter() - start, 3)
        return result, EXIT_FAIL
    checks = result["checks"]
    phases = result["phases"] = {"tree_s": round(tree_s, 3),
                                 "torch_import_s": round(time.perf_counter() - start - tree_s, 3)}
    checks.append(check("torch import", "pass",
                        f"torch {torch.__version__} from {os.path.dirname(torch.__file__)}"))
    collect_env_torch(env)
    device = select_device(cfg, env)
    result["device"] = device
    checks.extend(env_checks(env, cfg, device))
    checks.append(tree)
    phases["env_s"] = round(time.perf_counter() - start - tree_s - phases["torch_import_s"], 3)
    mark = time.perf_counter()
    checks.extend(release_checks(env, device))
    phases["release_s"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    try:
        multi, result["multi_gpu"] = multi_gpu_checks(cfg, level, env)
    except Exception as exc:  # a GPU in a bad state, no room for the ranks' folder: four lines, not a crash
        why = f"the multi-GPU checks crashed: {error_line(exc)}"
        multi, result["multi_gpu"] = [check(name, "fail", why) for name in MULTI_GPU_CHECKS], {"ran": False,
                                                                                                 "reason": why}
    checks.extend(multi)
    phases["multi_gpu_s"] = round(time.perf_counter() - mark, 3)

    if checks_only:
        mark = time.perf_counter()
        checks.extend(compile_checks(device, level, isa_paid=False))
        phases["compile_checks_s"] = round(time.perf_counter() - mark, 3)
        result["checks_only"] = True
        result["ok"] = not any(c["status"] == "fail" for c in checks)
        result["duration_s"] = round(time.perf_counter() - start, 3)
        return result, (EXIT_OK if result["ok"] else EXIT_FAIL)
    settings = resolve_settings(cfg, level, "cuda" if device.startswith("cuda") else "cpu")
    result["settings"] = settings
    jit_warnings = []
    workdir = tempfile.mkdtemp(prefix="envctl-smoke-")
    monitor = _monitor(torch, device)
    before, groups = monitor.sample(), []
    result["machine"] = {"before": public(before), "after": None, "groups": groups,
                         "notes": []}
    mark = time.perf_counter()
    try:
        # the round-trip's fresh process imports torch while the first model compiles; the
        # runner waits for it before it times anything
        ts_state = start_roundtrip(jit_warnings, workdir)
        try:
            rows = run_benchmarks(settings, device, jit_warnings, monitor, groups,
                                  before_timing=lambda: wait_roundtrip(ts_state))
        except Exception as exc:  # the runner itself broke: keep going
            rows = []
            checks.append(check("benchmarks", "fail", f"benchmark runner crashed: {error_line(exc)}"))
        whole = monitor.window(before, monitor.sample())
        result["machine"].update(after=whole["after"], other_cpu_cores=whole["other_cpu_cores"],
                                 seconds=whole["seconds"], cores=whole["cores"])
        phases["benchmarks_s"], mark = round(time.perf_counter() - mark, 3), time.perf_counter()
        if settings.get("warm_compile"):
            note = warm_compile(rows, settings, device)
            if note:
                result["machine"]["notes"].append(note)
            phases["warm_compile_s"], mark = round(time.perf_counter() - mark, 3), time.perf_counter()
        result["benchmarks"] = rows
        checks.extend(benchmark_checks(rows))
        ts = finish_roundtrip(ts_state)
        phases["torchscript_s"], mark = round(time.perf_counter() - mark, 3), time.perf_counter()
        result["torchscript"] = ts
        checks.append(torchscript_check(ts))
        # after the benchmarks: a CPU compile has run inductor's ISA detection (cached per process)
        cpu_compiled = device == "cpu" and any(r["mode"].startswith("compile-") for r in rows)
        checks.extend(compile_checks(device, level, isa_paid=cpu_compiled))
        phases["compile_checks_s"] = round(time.perf_counter() - mark, 3)
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
            emit(out_fd, {"schema": SCHEMA, "ok": False, "error": str(exc)}, indent)
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
                      "checks": [check("probe", "fail", f"probe crashed: {error_line(exc)}")]}
            code = EXIT_FAIL
        emit(out_fd, result, indent)
        return code
    finally:
        sys.stderr.flush()
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
