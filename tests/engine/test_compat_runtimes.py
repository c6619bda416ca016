"""envctl compat under both runtimes (Python, libtorch from C++) in the real CPU image, with a
real AOTInductor package, JUnit output and the per-image loader cache."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import pytest
import torch

from .conftest import run_envctl

try:
    from tests.fixtures.artifacts import make_aoti_package, make_artifacts
except ImportError:  # pragma: no cover
    from fixtures.artifacts import make_aoti_package, make_artifacts

IMAGE = "pytorch-2.13-cpu"
EXPECTED = {"scripted": "ok", "traced": "ok", "method": "ok", "bf16": "ok", "aoti": "ok", "truncated": "load-error",
            "altered": "mismatch", "gpu_only": "run-error", "hog": "crash"}


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory, engine_env, cpu_image):
    root = tmp_path_factory.mktemp("compat-runtimes")
    env = {**engine_env, "ENVCTL_RECORDS": str(root / "records.db"), "ENVCTL_ARTIFACTS": str(root / "store"),
           "ENVCTL_CACHE": str(root / "cache")}
    arts = make_artifacts(root / "made")
    arts["aoti"] = make_aoti_package(root / "made")
    for name, (path, inputs) in arts.items():
        args = ["artifacts", "add", str(path), "--name", name]
        if name == "altered":  # reference outputs that the model does not produce
            wrong = root / "wrong-outputs.pt"
            torch.save([torch.full((2, 4), 7.0)], wrong)
            args += ["--inputs", str(inputs), "--outputs", str(wrong)]
        elif name in ("truncated", "gpu_only"):
            args += ["--inputs", str(inputs)]
        elif inputs is not None:
            args += ["--inputs", str(inputs), "--python", sys.executable]
        result = run_envctl(*args, env=env)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return env, root


def test_an_aoti_package_is_identified_from_the_archive(runtime_env):
    listing = {a["name"]: a for a in json.loads(run_envctl("artifacts", "list", "--json", env=runtime_env[0]).stdout)}
    assert listing["aoti"]["kind"] == "aoti" and listing["aoti"]["info"]["device"] == "cpu"
    assert listing["exported"]["kind"] == "export"


def test_python_and_libtorch_give_the_same_verdicts_and_junit_counts_every_cell(runtime_env):
    env, root = runtime_env
    junit = root / "run.xml"
    result = run_envctl("compat", "run", "--image", IMAGE, "--runtime", "python", "--runtime", "libtorch",
                        "--junit", str(junit), "--json", env=env)
    assert result.returncode == 1, result.stderr  # the cells that are not ok, each a JUnit failure
    assert "built the libtorch loader of pytorch-2.13-cpu" in result.stderr
    rows = json.loads(result.stdout)
    by = {(r["artifact"], r["runtime"]): r for r in rows}
    for name, want in EXPECTED.items():
        assert by[(name, "python")]["status"] == want, by[(name, "python")]
        assert by[(name, "libtorch")]["status"] == want, by[(name, "libtorch")]
    # torch.export programs need Python: said so, not a crash
    assert by[("exported", "python")]["status"] == "ok"
    assert by[("exported", "libtorch")]["status"] == "unsupported"
    for runtime in ("python", "libtorch"):
        gpu = by[("gpu_only", runtime)]
        assert "CUDA" in gpu["detail"] and "TorchScript interpreter" not in gpu["detail"], gpu
        assert gpu["device"] == "cpu"
    suites = ET.parse(junit).getroot()
    cases = suites.findall("./testsuite/testcase")
    assert len(cases) == len(rows) == 2 * 10 and int(suites.get("tests")) == 20
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == sum(r["status"] != "ok" for r in rows) == int(suites.get("failures"))
    assert {s.get("name") for s in suites.findall("testsuite")} == {f"{IMAGE} python/cpu", f"{IMAGE} libtorch/cpu"}
    matrix = json.loads(run_envctl("compat", "matrix", "--json", env=env).stdout)
    assert matrix["targets"] == [f"{IMAGE} libtorch/cpu", f"{IMAGE} python/cpu"]  # side by side


def test_the_second_libtorch_run_does_not_rebuild_the_loader(runtime_env):
    env, root = runtime_env
    loaders = list((root / "cache" / "compat-loader").glob("*/compat_loader"))
    assert len(loaders) == 1
    before = loaders[0].stat().st_mtime_ns
    again = run_envctl("compat", "run", "--image", IMAGE, "--runtime", "libtorch", "--artifact", "scripted",
                       "--artifact", "aoti", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert "built the libtorch loader" not in again.stderr
    assert [r["status"] for r in json.loads(again.stdout)] == ["ok", "ok"]
    assert loaders[0].stat().st_mtime_ns == before


def test_gate_writes_junit_and_cuda_on_a_cpu_host_is_one_line(runtime_env):
    env, root = runtime_env
    junit = root / "gate.xml"
    names = ["--artifact", "scripted", "--artifact", "aoti", "--artifact", "truncated"]
    gate = run_envctl("compat", "check", "--from", IMAGE, "--to", f"python:{sys.executable}", *names,
                      "--device", "cpu", "--junit", str(junit), env=env)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    suites = ET.parse(junit).getroot()
    assert int(suites.get("tests")) == 6 and int(suites.get("failures")) == 0
    assert int(suites.get("skipped")) == 2  # truncated fails under --from as well: no baseline
    cuda = run_envctl("compat", "run", "--image", IMAGE, "--device", "cuda", "--artifact", "scripted", env=env)
    errors = [ln for ln in cuda.stderr.splitlines() if ln.startswith("error")]
    assert cuda.returncode == 1 and len(errors) == 1 and "gpu" in errors[0].lower()
    assert "hint: this engine gives containers no GPU" in cuda.stderr and "--device cpu" in cuda.stderr
