"""Every real name builds (issue #27): a real pytorch-X.Y-VARIANT without a file is derived from the
release matrix and written to images/ when first locked; a refused name's suggestions say whether
each works here, the first one that does first; the old -pypi names resolve with a note.

Locks run against a local index (ENVCTL_INDEX_URL: where derived specs take PyPI's wheels from)
serving small torch-like wheels whose Requires-Dist says their build, as PyPI's do."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

try:
    from tests.fixtures.pypi_index import make_wheel, serve
    from tests.fixtures.torch_builds import ANY, CPU, TAG, variant_index
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.pypi_index import make_wheel, serve
    from fixtures.torch_builds import ANY, CPU, TAG, variant_index


@pytest.fixture
def index(tmp_path):
    """torch 2.10.0 (the cu128 build) and 2.12.1 (a CPU build where PyPI's is cu130), with companions."""
    built = variant_index(tmp_path / "index")
    files = built.root / "files"
    built.add("torch", make_wheel(files, "torch", "2.12.1", TAG, CPU))
    for torch, vision, audio in (("2.10.0", "0.25.0", "2.10.0"), ("2.12.1", "0.27.0", "2.12.1")):
        built.add("torchvision", make_wheel(files, "torchvision", vision, TAG, [f"torch=={torch}"]))
        built.add("torchaudio", make_wheel(files, "torchaudio", audio, ANY, [f"torch=={torch}"]))
    served, shutdown = serve(built)
    yield served
    shutdown()


def envctl(*args: str, index=None, cache=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("ENVCTL_INDEX_URL", None)
    if index is not None:
        env["ENVCTL_INDEX_URL"] = index.simple
    if cache is not None:
        env["ENVCTL_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_real_name_without_a_file_is_derived_and_show_says_why_this_source(project):
    before = sorted(p.name for p in (project / "images").iterdir())
    assert "pytorch-2.10-cu128.yaml" not in before
    text = envctl("show", "pytorch-2.10-cu128")
    assert text.returncode == 0, text.stderr
    rows = dict(line.split(None, 1) for line in text.stdout.splitlines() if line.strip() and line[0] != " ")
    assert rows["derived"].startswith("from the release matrix: no images/pytorch-2.10-cu128.yaml (envctl lock "
                                      "writes it); torch from pypi: PyPI's torch 2.10 Linux wheel is the cu128 build")
    assert rows["torch"].strip() == "2.10.0 from pypi" and rows["python"].startswith("3.11 from base")
    info = json.loads(envctl("show", "pytorch-2.10-cu128", "--json").stdout)
    assert info["spec"]["companions"] == ["torchvision", "torchaudio"] and info["spec"]["channels"] == []
    assert info["spec"]["base"] == "envctl/debian:bookworm" and info["lock"]["state"] == "not locked"

    # PyPI's 2.12 wheel is cu130: cu126 comes from the PyTorch index, and show says so
    other = json.loads(envctl("show", "pytorch-2.12-cu126", "--json").stdout)
    assert other["spec"]["torch_source"] == "pytorch-index" and other["spec"]["torch"] == "2.12.1"
    assert other["derived"]["why"] == ("PyPI's torch 2.12 wheel is the cu130 build, not cu126; cu126 comes from "
                                       "the PyTorch index (https://download.pytorch.org/whl/cu126)")
    # a hand-written spec always wins, though the matrix alone would derive another
    written = json.loads(envctl("show", "pytorch-2.13-cpu", "--json").stdout)
    assert written["derived"] is None and written["spec"]["torch_source"] == "find-links"
    assert sorted(p.name for p in (project / "images").iterdir()) == before  # show writes nothing


def test_a_derived_name_locks_builds_and_keeps_its_spec_beside_the_lock(project, index, tmp_path):
    cache = tmp_path / "cache"
    spec_file = project / "images" / "pytorch-2.10-cu128.yaml"
    lock_file = project / "locks" / "pytorch-2.10-cu128.conda-lock.yml"
    unlocked = envctl("build", "pytorch-2.10-cu128", "--dry-run", index=index, cache=cache)
    assert unlocked.returncode == 1 and "pytorch-2.10-cu128 has no lockfile" in unlocked.stderr
    assert "hint: run: envctl lock pytorch-2.10-cu128" in unlocked.stderr

    locked = envctl("lock", "pytorch-2.10-cu128", index=index, cache=cache)
    assert locked.returncode == 0, locked.stderr
    assert "wrote images/pytorch-2.10-cu128.yaml (derived from the release matrix" in locked.stderr
    spec = yaml.safe_load(spec_file.read_text())
    assert spec_file.read_text().startswith("# Derived by envctl from the release matrix")
    assert (spec["torch"], spec["cuda"], spec["torch_source"], spec["python_source"]) == \
        ("2.10.0", "cu128", "pypi", "base")
    assert spec["pip_index"] == {"index_url": index.simple}
    lock = lock_file.read_text()
    assert "version: 2.10.0\n" in lock and "nvidia-cuda-runtime-cu12" in lock  # the cu128 build, checked
    assert "name: torchvision\n  version: 0.25.0" in lock and "name: torchaudio\n  version: 2.10.0" in lock

    check = envctl("lock", "--check", "pytorch-2.10-cu128", index=index, cache=cache)
    assert check.returncode == 0 and check.stdout.split() == ["locked", "pytorch-2.10-cu128"]
    dry = envctl("build", "pytorch-2.10-cu128", "--dry-run", index=index, cache=cache)
    assert dry.returncode == 0, dry.stderr
    assert "FROM envctl/debian:bookworm" in dry.stdout
    # from now on it is a spec like any other: no longer derived, a re-lock changes nothing
    assert json.loads(envctl("show", "pytorch-2.10-cu128", "--json").stdout)["derived"] is None
    before = spec_file.read_bytes(), lock_file.read_bytes()
    again = envctl("lock", "pytorch-2.10-cu128", index=index, cache=cache)
    assert again.returncode == 0 and "unchanged locks/pytorch-2.10-cu128.conda-lock.yml" in again.stderr
    assert (spec_file.read_bytes(), lock_file.read_bytes()) == before


def test_a_derived_name_that_resolves_another_build_writes_neither_spec_nor_lock(project, index, tmp_path):
    # PyPI's torch 2.12 is the cu130 build; this index's 2.12.1 is a CPU one: refused before anything is written
    failed = envctl("lock", "pytorch-2.12-cu130", index=index, cache=tmp_path / "cache")
    assert failed.returncode == 1, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cuda: cu130, but torch 2.12.1 resolved for linux-64 is the cpu build" in errors[0]
    assert not (project / "images" / "pytorch-2.12-cu130.yaml").exists()
    assert not (project / "locks" / "pytorch-2.12-cu130.conda-lock.yml").exists()
    assert "Traceback" not in failed.stderr


def _nearest(stderr: str) -> list[str]:
    first = stderr.splitlines()[0]
    return first.split("; nearest real images: ", 1)[1].split("), ")


def test_a_refused_name_lists_first_a_neighbour_that_works_here(project, index, tmp_path):
    # a hand-written neighbour taking torch from a folder this machine lacks: named as what it needs
    (project / "images" / "pytorch-2.10-cu126.yaml").write_text(yaml.safe_dump({
        "version": 1, "name": "pytorch-2.10-cu126", "python": "3.11", "torch": "2.10.0", "cuda": "cu126",
        "torch_source": "find-links", "python_source": "base", "channels": [],
        "pip_index": {"index_url": index.simple, "find_links": [str(tmp_path / "no-such-wheels")]}}))
    cache = tmp_path / "cache"

    before = envctl("show", "pytorch-2.10-cu118", index=index, cache=cache)
    assert before.returncode == 2 and before.stdout == ""
    assert before.stderr.startswith("error: torch 2.10 was never released for CUDA 11.8; torch 2.10 has cpu, cu126, "
                                    "cu128, cu130; nearest real images: ")
    near = _nearest(before.stderr)
    assert near[0] == "pytorch-2.10-cu128 (same torch, other CUDA; not locked; locks and builds here"
    missing = tmp_path / "no-such-wheels"
    assert near[1] == f"pytorch-2.10-cu126 (same torch, other CUDA; needs {missing}: unreachable here"
    assert near[2].startswith("pytorch-2.7-cu118 (same CUDA, older torch; ")
    assert before.stderr.splitlines()[1] == "hint: try: envctl lock pytorch-2.10-cu128"

    assert envctl("lock", "pytorch-2.10-cu128", index=index, cache=cache).returncode == 0
    after = envctl("build", "pytorch-2.10-cu118", index=index, cache=cache)
    assert after.returncode == 2
    assert _nearest(after.stderr)[0] == "pytorch-2.10-cu128 (same torch, other CUDA; locked, builds here"
    assert after.stderr.splitlines()[1] == "hint: try: envctl build pytorch-2.10-cu128"
    assert "Traceback" not in after.stderr


def test_a_neighbour_whose_spec_is_broken_is_listed_as_such_in_the_one_line(project, index, tmp_path):
    (project / "images" / "pytorch-2.10-cu126.yaml").write_text("version: 1\nname: [unclosed\n")
    (project / "locks" / "pytorch-2.10-cu128.conda-lock.yml").mkdir()  # a folder where a lock belongs
    result = envctl("show", "pytorch-2.10-cu118", index=index, cache=tmp_path / "cache")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 2, result.stderr
    near = _nearest(result.stderr)
    assert near[0] == "pytorch-2.10-cu128 (same torch, other CUDA; not locked; locks and builds here"
    assert near[1] == ("pytorch-2.10-cu126 (same torch, other CUDA; its spec does not load: envctl show "
                       "pytorch-2.10-cu126 says why")
    assert "Traceback" not in result.stderr


def test_the_nearest_neighbour_that_works_here_leads(project, index, tmp_path):
    # torch 2.12 has cu126 (the PyTorch index), cu130 (PyPI's build: served here) and cu132; for cu128,
    # cu126 and cu130 are equally near; torch 2.8 cu128 (older torch) is locked, but further away
    result = envctl("show", "pytorch-2.12-cu128", index=index, cache=tmp_path / "cache")
    assert result.returncode == 2
    near = _nearest(result.stderr)
    assert near[0].startswith("pytorch-2.12-cu1") and near[0].endswith(("locks and builds here", "locked, builds here"))
    assert "pytorch-2.12-cu130 (same torch, other CUDA; not locked; locks and builds here" in near


def test_the_old_pypi_names_resolve_to_the_plain_ones_with_a_note(project):
    shown = envctl("show", "pytorch-2.8-cu128-pypi")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ("note: pytorch-2.8-cu128-pypi is now called pytorch-2.8-cu128; the old name works "
                            "until envctl 0.2.0\n")
    assert shown.stdout.splitlines()[0].split() == ["image", "pytorch-2.8-cu128"]
    as_json = envctl("show", "pytorch-2.14-cu130-pypi", "--json")
    assert json.loads(as_json.stdout)["spec"]["name"] == "pytorch-2.14-cu130"  # stdout stays one document
    assert as_json.stderr.startswith("note: pytorch-2.14-cu130-pypi is now called pytorch-2.14-cu130")
    check = envctl("lock", "--check", "pytorch-2.14-cu130-pypi")
    assert check.returncode == 0 and check.stdout.split() == ["locked", "pytorch-2.14-cu130"]

    # a spec the user wrote under the old name is theirs: it wins, without a note
    text = (project / "images" / "pytorch-2.8-cu128.yaml").read_text()
    (project / "images" / "pytorch-2.8-cu128-pypi.yaml").write_text(
        text.replace("name: pytorch-2.8-cu128\n", "name: pytorch-2.8-cu128-pypi\n"))
    own = envctl("show", "pytorch-2.8-cu128-pypi")
    assert own.returncode == 0 and own.stderr == ""
    assert own.stdout.splitlines()[0].split() == ["image", "pytorch-2.8-cu128-pypi"]
