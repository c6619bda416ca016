"""The sweep's pure planning: the combinations a range names, what the records already settle
for a lock, failure classes, which images are given back under --keep / --max-disk."""

from __future__ import annotations

from types import SimpleNamespace

from envctl.matrix import load_matrix
from envctl.sweep.plan import (Cell, Combo, Held, cell_from_document, check_variants, classify, combinations,
                               geomean_speedups, lock_versions, python_problem, settled, tally, to_give_back)


def test_default_variant_is_pypis_wheel_one_per_stable_release_since():
    matrix = load_matrix()
    combos = combinations(matrix, since="2.0", variants="default")
    assert [c.torch for c in combos] == matrix.minors()  # every release since 2.0, oldest first, once
    by_torch = {c.torch: c.variant for c in combos}
    assert by_torch["2.13"] == "cu130" and by_torch["2.15"] == "cu132"  # what `pip install torch` gives
    assert all(c.python is None and c.target is None for c in combos)


def test_all_variants_and_a_list_keep_only_released_ones():
    matrix = load_matrix()
    everything = combinations(matrix, since="2.13", until="2.13", variants="all")
    assert [c.name for c in everything] == [f"pytorch-2.13-{v}" for v in matrix.torch["2.13"].variants]
    listed = combinations(matrix, since="2.7", until="2.9", variants="cpu,cu118")
    assert [c.name for c in listed] == ["pytorch-2.7-cpu", "pytorch-2.7-cu118", "pytorch-2.8-cpu", "pytorch-2.9-cpu"]


def test_pythons_multiply_the_combinations():
    combos = combinations(load_matrix(), since="2.13", until="2.13", variants="cpu", pythons=["3.11", "3.9"])
    assert [(c.name, c.python) for c in combos] == [("pytorch-2.13-cpu", "3.11"), ("pytorch-2.13-cpu", "3.9")]
    assert combos[1].label == "pytorch-2.13-cpu (Python 3.9)"


def test_bad_variants_are_named():
    assert check_variants("default") is None and check_variants("cpu, cu126") is None
    assert check_variants("cpu,cuda12") == "--variants cpu,cuda12: cuda12 is not a variant"


def test_no_wheel_for_python_says_the_range():
    rel = load_matrix().torch["2.13"]
    assert python_problem(rel, "3.11") is None and python_problem(rel, None) is None
    assert python_problem(rel, "3.9") == "no wheel for Python 3.9: torch 2.13 has wheels for CPython 3.10 to 3.14"


def test_failure_classes_come_from_the_data_file():
    assert classify("plan", "pytorch-2.12-cpu is a real PyTorch combination (stable) but the catalog has no "
                            "images/pytorch-2.12-cpu.yaml") == ("no spec", True)
    assert classify("plan", "no wheel for Python 3.9: torch 2.13 has wheels for CPython 3.10 to 3.14") == \
        ("no wheel for that Python", True)
    assert classify("verify", "c++ compiler: no C++ compiler found (torch.compile needs one)") == \
        ("missing compiler", False)
    assert classify("verify", "pip drift: 1 differ; cudnn: cuDNN runtime 9.1 does not match compile-time 9.2") == \
        ("cuDNN differs from torch's build", False)
    assert classify("verify", "torch import: cannot import torch: ImportError: libcudnn.so.9") == \
        ("import error", False)
    # from the sweep since 2.0 (2026-12-07): the first class that matches names a line of several checks
    assert classify("verify", "arch list: capability 6.1 missing from torch's arch list sm_37..sm_86 (the release "
                              "matrix lists 3.7, 5.0, 6.0, 6.1); torch.compile: torch.compile failed: compile-default "
                              "on resnet-small fp32 b1: RuntimeError: Python 3.11+ not yet supported for "
                              "torch.compile (+1 more)") == ("torch.compile unsupported on this Python", False)
    assert classify("verify", "arch list: capability 6.1 missing from torch's arch list sm_37..sm_86") == \
        ("arch list differs from the matrix", False)
    assert classify("build", "build failed at step 3: pip exited 1") == ("build failed", False)
    assert classify("lock", "torch==2.0.1 has no wheel for requires-python >=3.13") == \
        ("no wheel for that Python", False)
    # a source this machine cannot reach says nothing of the image: grey, not red (seen in a real sweep)
    assert classify("lock", "package index https://download.pytorch.org/whl/cu126 is unreachable: host name not "
                            "resolved (DNS)") == ("source unreachable", True)


LOCK_A, LOCK_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
COMBO = Combo("2.13", "cpu")


def _cell(state="verified", lock=LOCK_A, spec="sha256:s", combo=COMBO):
    return Cell(combo, state, "reason", None if state == "verified" else "build failed", lock, spec)


def test_settled_for_the_same_lock_only():
    done = _cell()
    assert settled(COMBO, lock_hash=LOCK_A, spec_hash="sha256:s", cells=[done]) is done
    assert settled(COMBO, lock_hash=LOCK_B, spec_hash="sha256:s", cells=[done]) is None  # re-locked: redo
    assert settled(COMBO, lock_hash=None, spec_hash="sha256:s", cells=[done]) is None  # lock gone: redo
    assert settled(Combo("2.12", "cpu"), lock_hash=LOCK_A, spec_hash="sha256:s", cells=[done]) is None


def test_only_the_newest_record_counts():
    newer_failure, older_success = _cell("failed"), _cell()
    cells = [newer_failure, older_success]
    assert settled(COMBO, lock_hash=LOCK_A, spec_hash="x", cells=cells) is newer_failure
    assert settled(COMBO, lock_hash=LOCK_A, spec_hash="x", cells=cells, retry_failed=True) is None


def test_a_failed_lock_is_settled_for_the_same_spec():
    failed_lock = _cell("failed", lock=None, spec="sha256:s")
    assert settled(COMBO, lock_hash=None, spec_hash="sha256:s", cells=[failed_lock]) is failed_lock
    assert settled(COMBO, lock_hash=None, spec_hash="sha256:t", cells=[failed_lock]) is None  # spec edited


def test_grey_cells_settle_only_as_a_lock_whose_source_was_unreachable():
    grey = Cell(COMBO, "grey", "interrupted", "interrupted", LOCK_A)
    assert settled(COMBO, lock_hash=LOCK_A, spec_hash="x", cells=[grey]) is None
    # the lock of this very spec could not reach its source: not retried on resume (a rerun with
    # nothing new stays fast), unless asked, or once the spec changes
    unreachable = Cell(COMBO, "grey", "package index https://download.pytorch.org/whl/cpu is unreachable",
                       "source unreachable", None, "sha256:s")
    assert settled(COMBO, lock_hash=None, spec_hash="sha256:s", cells=[unreachable]) is unreachable
    assert settled(COMBO, lock_hash=None, spec_hash="sha256:s", cells=[unreachable], retry_failed=True) is None
    assert settled(COMBO, lock_hash=None, spec_hash="sha256:t", cells=[unreachable]) is None


def test_give_back_oldest_first_under_keep_and_max_disk():
    held = [Held(f"sha256:{i}", f"img{i}", size) for i, size in enumerate((5, 3, 4))]
    assert to_give_back(held, keep=None, max_disk=None) == []
    assert [h.name for h in to_give_back(held, keep=1, max_disk=None)] == ["img0", "img1"]
    assert [h.name for h in to_give_back(held, keep=0, max_disk=None)] == ["img0", "img1", "img2"]
    assert [h.name for h in to_give_back(held, keep=None, max_disk=10)] == ["img0"]  # 12 > 10, then 7
    assert [h.name for h in to_give_back(held, keep=None, max_disk=10, cache_bytes=4)] == ["img0", "img1"]
    assert [h.name for h in to_give_back(held, keep=5, max_disk=3, cache_bytes=9)] == ["img0", "img1", "img2"]
    # before a build of 4 more: room is made first (12 + 4 > 13: the oldest goes, 7 + 4 fits)
    assert [h.name for h in to_give_back(held, keep=None, max_disk=13, incoming=4)] == ["img0"]
    assert to_give_back(held, keep=None, max_disk=16, incoming=4) == []


def test_cells_round_trip_through_their_document():
    cell = Cell(Combo("2.14", "cu130", "3.12"), "failed", "cudnn: differs", "cuDNN differs from torch's build",
                LOCK_A, "sha256:s", "3.12", 123, 1.5, 60.0, 4.0, {"cuda": "13.0.3"}, {"compile-default": 1.2})
    assert cell_from_document(cell.document(), when=5.0) == Cell(**{**cell.__dict__, "when": 5.0})
    assert cell_from_document({"torch": 2.14}) is None and cell_from_document("x") is None


def test_tally_counts_classes():
    cells = [_cell(), _cell("failed"), _cell("failed"), Cell(COMBO, "grey", "r", "no spec")]
    assert tally(cells).most_common() == [("build failed", 2), ("no spec", 1)]


def test_speedups_are_geometric_means_per_compile_mode():
    rows = [{"mode": "compile-default", "speedup": {"median": 2.0}}, {"mode": "compile-default",
                                                                      "speedup": {"median": 0.5}},
            {"mode": "eager", "speedup": None}, {"mode": "compile-max-autotune", "speedup": {"median": 3}},
            {"mode": "compile-x", "status": "error"}]
    assert geomean_speedups({"benchmarks": rows}) == {"compile-default": 1.0, "compile-max-autotune": 3.0}


def test_lock_versions_name_what_the_matrix_names():
    pkgs = [SimpleNamespace(name=n, version=v) for n, v in (
        ("torch", "2.14.0"), ("cuda-toolkit", "13.0.3"), ("nvidia-cuda-runtime", "13.0.96"),
        ("nvidia-cudnn-cu13", "9.24.0.43"), ("nvidia-nccl-cu13", "2.30.7"), ("triton", "3.8.0"), ("numpy", "2"))]
    assert lock_versions(pkgs) == {"torch": "2.14.0", "cuda": "13.0.3", "cudnn": "9.24.0.43", "nccl": "2.30.7",
                                   "triton": "3.8.0"}


def test_lock_versions_read_conda_names_too():
    pkgs = [SimpleNamespace(name=n, version=v) for n, v in (
        ("pytorch", "2.5.1"), ("cuda-cudart", "12.4.127"), ("cuda-version", "12.4"), ("cudnn", "9.3.0.75"),
        ("nccl", "2.23.4.1"))]
    assert lock_versions(pkgs) == {"torch": "2.5.1", "cuda": "12.4", "cudnn": "9.3.0.75", "nccl": "2.23.4.1"}


def test_a_damaged_classes_file_is_one_error_naming_it(monkeypatch):
    import pytest

    from envctl import data
    from envctl.errors import DamagedDocumentError
    from envctl.sweep import plan

    monkeypatch.setattr(data, "read", lambda name: "version: 1\nclasses: [{class: x, stage: plan, pattern: '('}]\n")
    plan._classes.cache_clear()
    try:
        with pytest.raises(DamagedDocumentError, match="envctl/data/sweep-failures.yaml: not a table of failure"):
            classify("plan", "anything")
    finally:
        plan._classes.cache_clear()
