"""`envctl lock` refuses a torch that is not the spec's variant: exit 1, one error line, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

try:
    from tests.fixtures.pypi_index import serve
    from tests.fixtures.torch_builds import cpu_wheel, spec_data, variant_index
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.pypi_index import serve
    from fixtures.torch_builds import cpu_wheel, spec_data, variant_index


@pytest.fixture
def index(tmp_path):
    served, shutdown = serve(variant_index(tmp_path / "index"))
    yield served
    shutdown()


def envctl(*args: str, root, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "ENVCTL_PROJECT": str(root), "ENVCTL_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_cpu_spec_whose_folder_lost_its_cpu_wheel_exits_1_in_one_line_and_keeps_the_lock(index, tmp_path):
    root, wheels = tmp_path / "proj", tmp_path / "wheels"
    (root / "images").mkdir(parents=True)
    (root / "images" / "variant-env.yaml").write_text(yaml.safe_dump(
        spec_data(index, torch="2.11.0", cuda="cpu", find_links=wheels)))
    lock = root / "locks" / "variant-env.conda-lock.yml"

    cpu_wheel(wheels).unlink()  # the folder is there, its torch 2.11.0+cpu is not: PyPI-style CUDA torch only
    failed = envctl("lock", "variant-env", root=root, cache=tmp_path / "cache")
    assert failed.returncode == 1, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {root}/images/variant-env.yaml: cuda: cpu, but torch 2.11.0 resolved for linux-64 is the "
                      f"cu130 build ({index.url}/files/torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl: "
                      f"requires cuda-toolkit==13.0.2); no lock written"], failed.stderr
    assert failed.stderr.splitlines()[-1].startswith(f"hint: put the torch 2.11.0+cpu wheel in {wheels}")
    assert "Traceback" not in failed.stderr and failed.stdout == ""
    assert not (root / "locks").exists() or not any((root / "locks").iterdir())  # nothing, not even a temp file

    cpu_wheel(wheels)
    good = envctl("lock", "variant-env", root=root, cache=tmp_path / "cache")
    assert good.returncode == 0, good.stderr
    before = lock.read_bytes()
    assert b"version: 2.11.0+cpu" in before and b"cuda-toolkit" not in before

    next(wheels.glob("torch-*.whl")).unlink()  # the mirror loses the wheel: a re-lock must not swap builds
    again = envctl("lock", "variant-env", root=root, cache=tmp_path / "cache")
    assert again.returncode == 1 and "is the cu130 build" in again.stderr
    assert lock.read_bytes() == before and sorted(p.name for p in lock.parent.iterdir()) == [lock.name]
