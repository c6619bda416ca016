"""Tests for the in-image smoke probe (envctl/probes/smoke.py and its probe_* siblings).

The probe is run as a plain script in a subprocess with this interpreter's torch, the way it
runs inside an image. The quick probe runs once per module (module-scoped fixture). Pure
helpers are tested in-process, imported by plain name from the probe folder the way smoke.py
imports its siblings.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBES = ROOT / "envctl" / "probes"
SMOKE = PROBES / "smoke.py"
PROBE_FILES = sorted(PROBES.glob("*.py"))

HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(autouse=True)
def _torch_or_fail(request):
    """Tests marked torch fail (never skip) without torch: deselect them with -m 'not torch'."""
    if request.node.get_closest_marker("torch") and not HAVE_TORCH:
        pytest.fail("torch is not importable in the test interpreter (scripts/test.sh installs it); "
                    "deselect with -m 'not torch'", pytrace=False)


def _import_probe_module(name):
    """A probe module imported by plain name with the probe folder on sys.path, as in the image."""
    if str(PROBES) not in sys.path:
        sys.path.insert(0, str(PROBES))
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep the folder pristine
    try:
        return importlib.import_module(name)
    finally:
        sys.dont_write_bytecode = saved


bench = _import_probe_module("probe_bench")
checks_mod = _import_probe_module("probe_checks")
envinfo = _import_probe_module("probe_envinfo")
report = _import_probe_module("probe_report")
versions = _import_probe_module("probe_versions")


def run_probe(*args, config=None, env=None, timeout=600):
    """Run the probe; returns (exit code, parsed stdout, stderr). stdout must be one JSON object."""
    argv = [sys.executable, str(SMOKE), *args]
    stdin = None
    if config is not None:
        argv += ["--config", "-"]
        stdin = json.dumps(config)
    proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, env=env, cwd=str(ROOT))
    try:
        data = json.loads(proc.stdout)  # the whole of stdout: exactly one JSON document
    except ValueError as exc:
        raise AssertionError(f"stdout is not one JSON object ({exc}):\n{proc.stdout[:2000]}\n"
                             f"stderr tail:\n{proc.stderr[-3000:]}")
    return proc.returncode, data, proc.stderr


def checks_by_name(data):
    return {c["name"]: c for c in data["checks"]}


def rows(data, **match):
    return [r for r in data["benchmarks"] if all(r.get(k) == v for k, v in match.items())]


# --------------------------------------------------------------------------- full quick run


@pytest.fixture(scope="module")
def quick_run():
    return run_probe("--quick")


@pytest.mark.torch
@pytest.mark.slow
class TestQuickRun:
    def test_json_shape(self, quick_run):
        code, data, _ = quick_run
        assert data["schema"] == "envctl.probe/1"
        assert data["level"] == "quick"
        for key in ("ok", "duration_s", "device", "settings", "env", "checks", "benchmarks",
                    "torchscript"):
            assert key in data, key
        for c in data["checks"]:
            assert set(c) >= {"name", "status", "message"}
            assert c["status"] in ("pass", "fail", "warn", "skip")
            assert "\n" not in c["message"]

    def test_passes(self, quick_run):
        code, data, stderr = quick_run
        failed = [c for c in data["checks"] if c["status"] == "fail"]
        assert code == 0 and data["ok"] is True, (failed, stderr[-3000:])

    def test_env(self, quick_run):
        import torch

        env = quick_run[1]["env"]
        assert env["torch"]["version"] == torch.__version__
        assert env["torch"]["parsed"]["major"] == int(torch.__version__.split(".")[0])
        assert env["python"]["executable"]
        assert env["compiler"]["cxx"]
        assert env["python_headers"]["present"] is True
        assert env["packages"]["pip"]["torch"] == torch.__version__
        assert isinstance(env["gpus"], list) and isinstance(env["arch_list"], list)

    def test_rows(self, quick_run):
        data = quick_run[1]
        modes = {r["mode"] for r in data["benchmarks"]}
        assert {"eager", "compile-default", "script", "trace"} <= modes
        for mode in ("eager", "compile-default", "script", "trace"):
            for r in rows(data, mode=mode):
                assert r["status"] == "ok", r
                assert r["agree"] is True, r
                assert r["median_ms"] > 0 and r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
                assert r["throughput_per_s"] > 0
                assert r["compile_s"] is not None
        for r in rows(data, mode="compile-default"):
            assert r["graph_breaks"] == 0 and r["recompiles"] == 0
        if data["device"] == "cpu":
            assert {r["model"] for r in data["benchmarks"]} == {"resnet-small", "transformer-small"}
            assert {r["batch"] for r in data["benchmarks"]} == {1}
            assert all(r["peak_mem_bytes"] is None for r in data["benchmarks"])

    def test_timing_fields(self, quick_run):
        data = quick_run[1]
        for r in data["benchmarks"]:
            assert r["ci_low_ms"] <= r["median_ms"] <= r["ci_high_ms"], r
            assert r["blocks"] >= 3 and r["calls_per_block"] >= 1 and isinstance(r["conclusive"], bool)
            sp = r["speedup"]
            if r["mode"] == "eager":
                assert sp is None
                continue
            assert sp["low"] <= sp["median"] <= sp["high"] and sp["rounds"] == r["blocks"]
            assert sp["verdict"] in ("faster", "slower", "same", "inconclusive")
            assert sp["conclusive"] == (sp["verdict"] != "inconclusive") and (sp["conclusive"] or sp["why"])
        machine = data["machine"]
        assert machine["before"]["host"]["torch_op_us"] > 0 and machine["other_cpu_cores"] is not None
        assert len(machine["groups"]) == 2 and all(g["timing"]["rounds"] >= 3 for g in machine["groups"])
        assert data["settings"]["timing"]["budget_s"] > 0 and data["settings"]["warm_compile"] is False

    def test_torchscript_roundtrip(self, quick_run):
        ts = quick_run[1]["torchscript"]
        assert ts["ok"] is True and ts["fresh_process"] is True, ts
        assert ts["script"]["positive"]["agree"] and ts["script"]["negative"]["agree"]
        assert ts["trace"]["froze_branch"] is True
        assert ts["trace"]["negative"]["agree"] is False
        assert isinstance(ts["warnings"], list)

    def test_release_checks_after_the_benchmarks(self, quick_run):
        # the compile benchmark ran inductor's CPU ISA detection: at quick its check is a cached lookup
        doc = quick_run[1]
        isa = checks_by_name(doc)["cpu vec isa"]
        assert isa["status"] == "pass" and isa["message"].startswith("inductor picked Vec"), isa
        assert doc["phases"]["compile_checks_s"] < 1 and doc["phases"]["release_s"] < 5

    def test_reports_its_duration_and_phases(self, quick_run):
        # (how long the quick probe takes is measured by benchmarks/cpu_quick.py, not asserted here)
        doc = quick_run[1]
        assert doc["duration_s"] > 0
        assert {"tree_s", "torch_import_s", "env_s"} <= set(doc["phases"])


# --------------------------------------------------------------------------- failing images


@pytest.mark.torch
def test_pip_drift_names_packages():
    import torch

    config = {"expect": {"torch": torch.__version__.split("+")[0],
                         "packages": {"pip": {"torch": "0.0.1",
                                              "envctl-made-up-pkg": "1.2.3",
                                              "Pytest": "0.0.2"}}}}
    code, data, _ = run_probe("--checks-only", config=config)
    assert code == 1 and data["ok"] is False
    checks = checks_by_name(data)
    assert checks["torch version"]["status"] == "pass"
    drift = checks["pip drift"]
    assert drift["status"] == "fail"
    msg = drift["message"]
    assert "envctl-made-up-pkg==1.2.3" in msg  # missing
    assert f"torch {torch.__version__} (expected 0.0.1)" in msg  # different
    assert "pytest" in msg and "(expected 0.0.2)" in msg  # PEP 503 normalized name
    assert "extra" in msg and "pip==" not in msg  # pip itself is not counted as extra
    assert drift["details"]["missing"] == {"envctl-made-up-pkg": "1.2.3"}
    assert set(drift["details"]["different"]) == {"torch", "pytest"}


@pytest.mark.torch
def test_pip_drift_passes_on_installed_set():
    code, data, _ = run_probe("--checks-only")
    installed = dict(data["env"]["packages"]["pip"])
    installed.pop("pip", None)  # tooling may be absent from the expected set
    code, data, _ = run_probe("--checks-only", config={"expect": {"packages": {"pip": installed}}})
    assert checks_by_name(data)["pip drift"]["status"] == "pass", checks_by_name(data)["pip drift"]
    assert code == 0


@pytest.mark.torch
@pytest.mark.parametrize("image, status", [("pytorch-2.8-cu128", "fail"), ("pytorch-2.13-cpu", "pass")])
def test_cuda_version_check_holds_this_cpu_torch_to_the_spec_s_cuda(image, status):
    """The config envctl verify gives the probe (expect.cuda "12.8" for a cu128 spec, None for cpu)
    against this interpreter's CPU torch: a named check, one line."""
    import torch

    from envctl.catalog import Project
    from envctl.probe import probe_config

    assert torch.version.cuda is None, "this test needs the test venv's CPU torch"
    config = probe_config(Project(ROOT).resolve(image), None, gpus="none", level="quick")
    code, data, _ = run_probe("--checks-only", config=config)
    cuda = checks_by_name(data)["cuda version"]
    assert (cuda["status"], cuda["message"]) == (status, {
        "fail": f"torch {torch.__version__} is a CPU build (torch.version.cuda is None), expected CUDA 12.8",
        "pass": f"torch {torch.__version__} is a CPU build as expected"}[status])
    if status == "fail":
        assert code == 1 and data["ok"] is False


@pytest.mark.torch
@pytest.mark.slow
def test_no_compiler(tmp_path):
    # Inductor uses $CXX (else g++) from torch._inductor.config.cpp.cxx; point CXX/CC at
    # nothing and strip PATH so no compiler can be found at all.
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHINDUCTOR_", "TRITON_"))}
    env.update(PATH=str(empty), CXX="/nonexistent/g++", CC="/nonexistent/cc",
               HOME=str(tmp_path))
    code, data, stderr = run_probe("--quick", env=env)
    assert code == 1 and data["ok"] is False
    checks = checks_by_name(data)
    cxx = checks["c++ compiler"]
    assert cxx["status"] == "fail"
    assert "CXX=/nonexistent/g++" in cxx["message"]
    assert "torch.compile cannot work" in cxx["message"]
    assert data["env"]["compiler"]["cxx"] is None
    assert checks["torch.compile"]["status"] == "fail"
    compile_rows = [r for r in data["benchmarks"] if r["mode"].startswith("compile-")]
    assert compile_rows
    for r in compile_rows:
        assert r["status"] == "error"
        assert "InvalidCxxCompiler" in r["error"] and "\n" not in r["error"]
    for mode in ("eager", "script", "trace"):
        for r in rows(data, mode=mode):
            assert r["status"] == "ok" and r["agree"] is True, r
    assert checks["eager"]["status"] == "pass"
    assert checks["torchscript round-trip"]["status"] == "pass"


# --------------------------------------------------------------------------- CLI and config


@pytest.mark.parametrize(
    "config, needle",
    [
        ([1, 2], "JSON object"),
        ({"level": "turbo"}, "level"),
        ({"gpus": "some"}, "gpus"),
        ({"expect": {"gpu_required": "yes"}}, "gpu_required"),
        ({"benchmark": {"compile_modes": ["fastest"]}}, "compile_modes"),
        ({"benchmark": {"batch_sizes": [0]}}, "batch_sizes"),
        ({"expect": {"packages": {"pip": {"torch": 2}}}}, "expect.packages.pip"),
        ({"expect": {"cuda": "cu128"}}, 'expect.cuda must be a CUDA version such as "12.8"'),
    ],
)
def test_bad_config_exits_2(config, needle):
    code, data, _ = run_probe(config=config)
    assert code == 2
    assert data["schema"] == "envctl.probe/1" and data["ok"] is False
    assert needle in data["error"]


def test_bad_json_and_args_exit_2(tmp_path):
    bad = tmp_path / "cfg.json"
    bad.write_text("{not json")
    code, data, _ = run_probe("--config", str(bad))
    assert code == 2 and "not valid JSON" in data["error"]
    code, data, _ = run_probe("--config", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read config" in data["error"]
    code, data, _ = run_probe("--bogus")
    assert code == 2 and "bad arguments" in data["error"]


def test_resolve_settings_cpu_quick_caps():
    cfg = {"benchmark": {"compile_modes": ["default", "reduce-overhead"], "batch_sizes": [1, 32],
                         "dtypes": ["fp32", "bf16"], "warmup": 10, "runs": 50,
                         "max_autotune": True}}
    s = bench.resolve_settings(cfg, "quick", "cpu")
    assert s["batch_sizes"] == [1] and s["dtypes"] == ["fp32"]
    assert s["modes"] == ["eager", "compile-default", "script", "trace"]
    assert s["runs"] <= 10 and s["warmup"] <= 3 and s["adjusted"]
    s = bench.resolve_settings(cfg, "standard", "cpu")
    assert s["batch_sizes"] == [1, 4]
    assert "compile-reduce-overhead" in s["modes"] and "compile-max-autotune" in s["modes"]
    s = bench.resolve_settings(cfg, "standard", "cuda")
    assert s["batch_sizes"] == [1, 32] and s["runs"] == 50


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2.13.0+cpu", {"major": 2, "minor": 13, "patch": 0, "pre": None, "local": "cpu"}),
        ("2.10.0a0+b4e4ee81d3",
         {"major": 2, "minor": 10, "patch": 0, "pre": "a0", "local": "b4e4ee81d3"}),
        ("2.7.1+cu118", {"major": 2, "minor": 7, "patch": 1, "pre": None, "local": "cu118"}),
        ("2.6.0.dev20241112+cu124",
         {"major": 2, "minor": 6, "patch": 0, "pre": "dev20241112", "local": "cu124"}),
        ("2.5.0rc1", {"major": 2, "minor": 5, "patch": 0, "pre": "rc1", "local": None}),
        ("12.6", {"major": 12, "minor": 6, "patch": None, "pre": None, "local": None}),
        ("2.13.0", {"major": 2, "minor": 13, "patch": 0, "pre": None, "local": None}),
    ],
)
def test_parse_version(text, expected):
    assert versions.parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "2.x", None])
def test_parse_version_rejects(text):
    assert versions.parse_version(text) is None


@pytest.mark.parametrize(
    "expected, actual, status",
    [
        ("2.13.0", "2.13.0+cpu", "pass"),
        ("2.13", "2.13.1+cu126", "pass"),
        ("2.13.0+cpu", "2.13.0+cpu", "pass"),
        ("2.13.0+cu126", "2.13.0+cpu", "fail"),
        ("2.13.0", "2.12.1+cpu", "fail"),
        ("2.10.0", "2.10.0a0+b4e4ee81d3", "warn"),
        ("2.10.0a0", "2.10.0a0+b4e4ee81d3", "pass"),
        ("2.7.1", "2.7.0+cu118", "fail"),
    ],
)
def test_compare_torch_version(expected, actual, status):
    assert versions.compare_torch_version(expected, actual)[0] == status


@pytest.mark.parametrize("expected, cuda, hip, status, message", [
    (None, None, None, "pass", "torch 2.13.0+cpu is a CPU build as expected"),
    (None, "13.0", None, "fail", "torch 2.13.0+cpu is built for CUDA 13.0, expected a CPU build"),
    (None, None, "6.4.1", "fail", "torch 2.13.0+cpu is a ROCm build (HIP 6.4.1), expected a CPU build"),
    ("12.8", None, None, "fail", "torch 2.13.0+cpu is a CPU build (torch.version.cuda is None), expected CUDA 12.8"),
    ("12.8", "12.8", None, "pass", "torch built for CUDA 12.8 as expected"),
    ("12.8", "12.6", None, "fail", "torch 2.13.0+cpu is built for CUDA 12.6, expected CUDA 12.8"),
    ("13.0", "12.8", None, "fail", "torch 2.13.0+cpu is built for CUDA 12.8, expected CUDA 13.0"),
    ("13", "13.2", None, "pass", "torch built for CUDA 13.2 as expected"),  # the minor only where named
    ("12.8", None, "6.4.1", "fail", "torch 2.13.0+cpu is a ROCm build (HIP 6.4.1), expected CUDA 12.8"),
])
def test_compare_cuda_version(expected, cuda, hip, status, message):
    assert versions.compare_cuda_version(expected, cuda, hip, "2.13.0+cpu") == (status, message)


def test_diff_packages():
    d = versions.diff_packages(
        {"Foo_Bar": "1.0", "numpy": "2.0.0", "torch": "2.13.0", "gone": "1"},
        {"foo-bar": "1.0.0", "numpy": "1.26.4", "torch": "2.13.0+cpu", "pip": "24", "new": "3"},
        ignore=["pip"],
    )
    assert d["extra"] == {"new": "3"}
    assert d["missing"] == {"gone": "1"}
    assert d["different"] == {"numpy": {"expected": "2.0.0", "installed": "1.26.4"}}
    assert versions.pip_versions_equal("2.13.0+cpu", "2.13.0+cpu")
    assert not versions.pip_versions_equal("2.13.0+cu126", "2.13.0+cpu")


@pytest.mark.parametrize(
    "cap, archs, covered",
    [
        ((9, 0), ["sm_50", "sm_80", "sm_90"], True),
        ((8, 6), ["sm_80"], True),           # same major, newer minor runs sm_80 cubins
        ((8, 0), ["sm_86"], False),          # older minor does not
        ((12, 0), ["sm_50", "sm_90"], False),
        ((12, 0), ["sm_90", "compute_90"], True),  # PTX JIT
        ((10, 0), ["sm_90a"], False),
        ((9, 0), ["sm_90a"], True),
        ((12, 0), ["sm_100", "sm_120"], True),
        ((7, 5), [], False),
    ],
)
def test_capability_covered(cap, archs, covered):
    assert versions.capability_covered(cap, archs) is covered


def test_cudnn_int_to_tuple():
    assert versions.cudnn_int_to_tuple(90100) == (9, 1, 0)
    assert versions.cudnn_int_to_tuple(91002) == (9, 10, 2)
    assert versions.cudnn_int_to_tuple(8902) == (8, 9, 2)


def test_error_line():
    exc = RuntimeError("backend='inductor' raised:\nInvalidCxxCompiler: no compiler\n\nmore")
    assert report.error_line(exc) == \
        "RuntimeError: backend='inductor' raised: InvalidCxxCompiler: no compiler"


# --------------------------------------------------------------------------- import hygiene


def _top_level_imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level:
                names.add("<relative>")
    return names


def test_probe_folder_has_the_modules():
    names = {p.name for p in PROBE_FILES}
    assert {"smoke.py", "roundtrip.py", "probe_report.py", "probe_versions.py", "probe_envinfo.py",
            "probe_checks.py", "probe_models.py", "probe_bench.py", "probe_torchscript.py",
            "probe_runner.py", "probe_timing.py", "probe_machine.py", "probe_warm.py",
            "probe_release.py", "cuda_errors.py", "probe_multigpu.py", "multigpu_rank.py", "probe_nccl.py",
            "multigpu_reference.json"} <= names | {p.name for p in PROBES.glob("*.json")}


@pytest.mark.parametrize("path", PROBE_FILES, ids=lambda p: p.name)
def test_imports_only_stdlib_and_torch(path):
    # sibling modules are imported by plain name (the folder is sys.path[0]); no relative imports
    siblings = {p.stem for p in PROBE_FILES if p.stem != "__init__"}
    allowed = set(sys.stdlib_module_names) | {"__future__", "torch", "torchvision"} | siblings
    bad = _top_level_imports(path) - allowed
    assert not bad, f"{path.name} imports non-stdlib modules: {sorted(bad)}"


@pytest.mark.parametrize("path", PROBE_FILES, ids=lambda p: p.name)
def test_module_name_shadows_nothing(path):
    # the probe folder comes first on sys.path in the image: a sibling named like a stdlib or
    # torch module would shadow it for torch and for the probe itself
    if path.stem != "__init__":
        assert path.stem not in sys.stdlib_module_names | {"torch", "torchvision"}


@pytest.mark.parametrize("path", PROBE_FILES, ids=lambda p: p.name)
def test_python39_syntax(path):
    # no match statements, no parenthesized context managers, etc.
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_env_checks_simulated_gpu_image():
    """GPU-side checks on a made-up env (no GPU is needed to exercise them)."""
    env = {
        "torch": {"version": "2.13.0+cu126", "cuda": "12.6"},
        "cuda_available": True,
        "arch_list": ["sm_50", "sm_80", "sm_90"],
        "gpus": [{"index": 0, "name": "A", "capability": "9.0", "memory_bytes": 1},
                 {"index": 1, "name": "B", "capability": "12.0", "memory_bytes": 1}],
        "driver_version": "575.0",
        "cudnn": 90501, "cudnn_version": "9.5.1", "nccl": "2.21.5",
        "compiler": envinfo.find_compilers(),
        "python_headers": {"include_dir": "/nowhere", "present": False},
        "packages": {"pip": {"nvidia-cudnn-cu12": "9.1.0.70", "nvidia-nccl-cu12": "2.21.5"},
                     "pip_from_conda": [], "conda": None},
    }
    cfg = {"gpus": 4, "expect": {"torch": "2.13.0", "cuda": "12.8", "gpu_required": True}}
    checks = {c["name"]: c for c in checks_mod.env_checks(env, cfg, "cuda:0")}
    assert checks["torch version"]["status"] == "pass"
    assert checks["cuda version"]["status"] == "fail"
    assert "12.8" in checks["cuda version"]["message"]
    assert checks["gpu available"]["status"] == "pass"
    assert checks["gpu count"]["status"] == "fail"
    arch = checks["gpu arch coverage"]
    assert arch["status"] == "fail"
    assert arch["message"] == "GPU 1 capability 12.0 not in arch list sm_50..sm_90"
    assert checks["cudnn wheel"]["status"] == "fail"
    assert "nvidia-cudnn-cu12 9.1.0.70" in checks["cudnn wheel"]["message"]
    assert checks["nccl wheel"]["status"] == "pass"
    assert checks["python headers"]["status"] == "fail"
    assert "torch.compile cannot" in checks["python headers"]["message"]
    assert "c compiler" in checks  # Triton's C compiler is checked on a CUDA device


# --------------------------------------------------------------------------- read-only mount


@pytest.mark.parametrize("flags", [[], ["-I"]], ids=["plain", "isolated"])
def test_runs_from_read_only_copy(tmp_path, flags):
    """Run from a read-only copy elsewhere (as mounted at /opt/envctl-probe): siblings import by
    plain name (also under -I, where the script's folder is not put on sys.path) and nothing is
    written to the folder."""
    ro = tmp_path / "envctl-probe"
    shutil.copytree(PROBES, ro, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for p in [ro, *ro.iterdir()]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        before = sorted(p.name for p in ro.iterdir())
        proc = subprocess.run([sys.executable, *flags, str(ro / "smoke.py"), "--bogus"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=120, cwd=str(tmp_path))
        assert proc.returncode == 2, proc.stderr[-2000:]
        data = json.loads(proc.stdout)
        assert data["schema"] == "envctl.probe/1" and "bad arguments" in data["error"]
        assert sorted(p.name for p in ro.iterdir()) == before  # no __pycache__
    finally:
        ro.chmod(0o755)
