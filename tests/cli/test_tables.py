"""Tables at the widths people's terminals have: nothing cut, nothing dropped (issue #15)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from envctl.cli.tables import Column, render


def envctl(*args: str, columns: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def _rendered(renderable, width: int) -> str:
    console = Console(width=width, file=open(os.devnull, "w"), no_color=True, record=True)
    console.print(renderable)
    return console.export_text()


def _assert_whole(text: str, width: int, values) -> None:
    assert "…" not in text
    assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
    # A long cell may wrap onto the next line at a space (inside the borders of a boxed table).
    flat = " ".join(text.translate({ord(c): " " for c in "│┃"}).split())
    for v in values:
        assert " ".join(str(v).split()) in flat, (v, text)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_render_keeps_short_columns_whole_through_rich(width):
    columns = [Column("image"), Column("torch"), Column("cuda"), Column("python"), Column("torch from", priority=3),
               Column("lock", priority=2), Column("note", short=False)]
    rows = [["pytorch-2.14-cu130", "2.14.1", "cu130", "3.11", "pytorch-index", "not locked",
             "a long note that has to wrap somewhere " * 3]]
    text = _rendered(render(columns, rows, width=width), width)
    _assert_whole(text, width, rows[0])
    first_data_line = next(line for line in text.splitlines() if "pytorch-2.14-cu130" in line)
    for short in ("2.14.1", "cu130", "3.11"):
        assert short in first_data_line  # the short columns stay on the row itself


@pytest.mark.parametrize("width", [60, 80])
def test_catalog_never_cuts_versions(project, width):
    result = envctl("catalog", columns=width)
    assert result.returncode == 0, result.stderr
    rows = json.loads(envctl("catalog", "--json", columns=width).stdout)
    values = [v for r in rows for v in (r["name"], r["torch"], r["cuda"], r["python"], r["torch_source"], r["lock"])]
    _assert_whole(result.stdout, width, values)
    for r in rows:  # torch, cuda and python on the image's own line
        line = next(line for line in result.stdout.splitlines() if line.startswith(r["name"] + " "))
        assert line.split()[1:4] == [r["torch"], r["cuda"], r["python"]]


def test_catalog_wide_is_one_table(project):
    result = envctl("catalog", "--wide", columns=60)
    assert result.returncode == 0
    header = next(line for line in result.stdout.splitlines() if "image" in line)
    assert "last build" in header and "last verify" in header and len(header) > 60


@pytest.mark.parametrize("width", [60, 80])
def test_history_keeps_every_field(width):
    from envctl.records import record_run

    now = time.time()
    for i, prefix in enumerate(("/home/someone/envs/pytorch-2.13-cpu-a", "/home/someone/envs/pytorch-2.13-cpu-b")):
        record_run(kind="setup", image="pytorch-2.13-cpu", ok=True, image_id=prefix, started=now + i,
                   duration_s=12.5 + i, summary="created", gpu="NVIDIA H100 80GB HBM3")
    record_run(kind="verify", image="pytorch-2.14-cu130", ok=False, image_id="sha256:" + "ab" * 32,
               started=now + 5, duration_s=49.4, summary="torch.compile: no C++ compiler in the image")
    result = envctl("history", columns=width)
    assert result.returncode == 0, result.stderr
    runs = json.loads(envctl("history", "--json", columns=width).stdout)
    values = [v for r in runs for v in (str(r["id"]), r["kind"], r["image"], r["gpu"] or "-", f"{r['duration_s']:.1f}",
                                        r["summary"])]
    values += ["/home/someone/envs/pytorch-2.13-cpu-a", "/home/someone/envs/pytorch-2.13-cpu-b", "abababababab"]
    _assert_whole(result.stdout, width, values)
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "id" and {"kind", "ok", "gpu", "seconds"} <= set(lines[0].split())
    row = next(line for line in lines if line.split()[:1] == [str(runs[0]["id"])])
    assert " verify " in row and " fail " in row and "49.4" in row


def test_catalog_lists_good_specs_beside_a_broken_one(project):
    path = project / "images" / "pytorch-2.3-cu118.yaml"
    data = yaml.safe_load(path.read_text())
    data["python"] = "3.13"
    path.write_text(yaml.safe_dump(data))
    (project / "images" / "pytorch-2.7-cu118.yaml").write_text("version: 1\nname: [unclosed\n")
    result = envctl("catalog", columns=80)
    assert result.returncode == 2
    assert "pytorch-2.13-cpu " in result.stdout and "2.13.0" in result.stdout
    from envctl.matrix import load_matrix

    low, high = load_matrix().release("2.3.1").python  # the range the matrix holds (refreshed from PyPI)
    assert "pytorch-2.3-cu118" in result.stdout and f"torch 2.3 supports Python {low} - {high}, not 3.13" in \
        " ".join(result.stdout.split())
    assert "pytorch-2.7-cu118" in result.stdout and "not valid YAML" in result.stdout
    assert result.stderr.startswith("error: ") and "pytorch-2.3-cu118.yaml: python:" in result.stderr
    assert "1 more broken: pytorch-2.7-cu118" in result.stderr
    rows = json.loads(envctl("catalog", "--json", columns=80).stdout)
    assert {r["name"] for r in rows if r["error"]} == {"pytorch-2.3-cu118", "pytorch-2.7-cu118"}


@pytest.mark.parametrize("width", [80, 160])
def test_compat_matrix_keeps_artifact_names_and_statuses_beside_long_interpreter_labels(width):
    # Four python:PATH targets once squeezed the artifact column to nothing (seen on the H100).
    from envctl.cli.compat_cmds import matrix_table

    targets = [f"python:/opt/torch/.venv/bin/python3 {rt}/{dev}"
               for rt in ("python", "libtorch") for dev in ("cuda", "cpu")]
    names = ["gpu_traced", "aoti_cuda", "truncated"]
    statuses = ["ok", "unsupported", "run-error", "load-error"]
    data = {"targets": targets, "artifacts": names,
            "cells": {n: {t: {"status": statuses[(i + j) % 4], "detail": ""} for j, t in enumerate(targets)}
                      for i, n in enumerate(names)}}
    text = _rendered(matrix_table(data, width=width), width)
    lines = text.splitlines()
    for i, name in enumerate(names):
        row = next(line for line in lines if f" {name} " in line)
        for j in range(len(targets)):
            assert statuses[(i + j) % 4] in row
    assert max(len(line) for line in lines) <= width


# Issue #21: every table at 80 columns (COLUMNS=80, NO_COLOR) shows every value whole.

def _tokens(text: str) -> set[str]:
    flat = text.translate({ord(c): " " for c in "│┃┏┓┗┛┡┩└┘┌┐━─┳┻╇╈┬┴┼"})
    return {t.strip("();,") for t in flat.split()}


def _assert_words_whole(result: subprocess.CompletedProcess, width: int, values) -> None:
    """No ellipsis, no line over the width, and every word of every value as one token: a value
    may wrap between its words, never inside one."""
    assert result.returncode in (0, 1), result.stderr
    text = result.stdout
    assert "…" not in text, text
    assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
    tokens = _tokens(text)
    for value in values:
        if str(value) == "-":  # "nothing here": left out of a row's second line
            continue
        for word in str(value).split():
            assert word.strip("();,") in tokens, (word, value, text)


@pytest.fixture
def labelled_image(docker_client):
    """A small image carrying envctl's labels and a long tag, as `envctl images` lists them."""
    import io

    tag = "envctl/fixture-tables-with-a-long-name:e5f0a7c3d9b1"
    dockerfile = ("FROM envctl/debian:bookworm\n"
                  "LABEL io.envctl.spec=fixture-tables-with-a-long-name io.envctl.torch=2.13.0 "
                  "io.envctl.cuda=cu130 io.envctl.python=3.11 "
                  "org.opencontainers.image.created=2026-12-06T20:15:07Z\n")
    image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                                          network_mode="none")
    yield tag
    docker_client.images.remove(image.id, force=True)


@pytest.mark.engine
@pytest.mark.parametrize("width", [80, 160])
def test_images_keeps_the_whole_tag(labelled_image, width):
    result = envctl("images", columns=width)
    rows = [r for r in json.loads(envctl("images", "--json", columns=width).stdout) if labelled_image in r["tags"]]
    assert rows, result.stdout
    values = [v for r in rows for v in (r["image"], r["id"], *r["tags"], r["torch"], r["cuda"], r["python"],
                                        r["created"], r["lock"])]
    _assert_words_whole(result, width, values)
    assert labelled_image in _tokens(result.stdout)
    line = next(line for line in result.stdout.splitlines() if line.startswith("fixture-tables-with-a-long-name")
                or "fixture-tables-with-a-long-name " in line)
    assert "2.13.0" in line.split() and "cu130" in line.split()  # the short columns on the image's line
    wide = envctl("images", "--wide", columns=width)
    header = next(line for line in wide.stdout.splitlines() if "image" in line)
    assert "layers" in header and "created" in header


def _bench_values(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """What bench show and bench compare print for two runs, formatted as the CLI formats them."""
    from envctl.bench import compare, load_runs
    from envctl.cli.bench_cmds import _ms, _num, _sp

    runs = [load_runs(str(f))[0] for f in (a, b)]
    shown = []
    for run in runs:
        for key, r in run.rows.items():
            sp = r.get("speedup") or {}
            shown += [key[0], key[1], str(key[2]), key[3], _num(r.get("compile_s")), _ms(r), _sp(sp) if sp else "-"]
    compared = []
    for r in compare(runs[:1], runs[1:]).rows:
        compared += [r.key[3], r.verdict, r.abs_verdict, _sp(r.speedup_a), _sp(r.speedup_b), _ms(r.a), _ms(r.b)]
    return shown, compared


GPU_RUNS = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "results" / "gpu"


def test_bench_show_and_compare_keep_every_value_at_80():
    a, b = GPU_RUNS / "standard-1.json", GPU_RUNS / "standard-2.json"
    shown, compared = _bench_values(a, b)
    show = envctl("bench", "show", str(a), str(b), columns=80)
    _assert_words_whole(show, 80, shown)
    comparison = envctl("bench", "compare", str(a), str(b), columns=80)
    _assert_words_whole(comparison, 80, compared + ["B speedup", "verdict", "compile-reduce-overhead"])
    header = next(line for line in show.stdout.splitlines() if line.startswith("model "))
    assert "speedup" in header.split()  # the verdict column stays in the row at 80


TARGETS = [f"python:/opt/torch/.venv/bin/python3 {rt}/{dev}"
           for rt in ("python", "libtorch") for dev in ("cuda", "cpu")]


def _matrix(names: list[str]) -> dict:
    return {"targets": TARGETS, "artifacts": names,
            "cells": {n: {t: {"status": "unsupported", "detail": ""} for t in TARGETS} for n in names}}


@pytest.mark.parametrize("width", [80, 120])
def test_compat_matrix_numbers_long_labels_under_a_legend(width):
    from envctl.cli.compat_cmds import matrix_table

    names = ["gpu_traced", "aoti_cuda"]
    text = _rendered(matrix_table(_matrix(names), width=width), width)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    for j, t in enumerate(TARGETS):  # each label whole, once, in the legend
        assert f"{j + 1} = {t}" in text.splitlines()
    for name in names:
        row = next(line for line in text.splitlines() if f" {name} " in line)
        assert row.count("unsupported") == len(TARGETS)


@pytest.mark.parametrize("width", [60, 80])
def test_compat_matrix_too_wide_even_numbered_is_one_record_per_artifact(width):
    from envctl.cli.compat_cmds import matrix_table

    names = ["gpu_traced_resnet_with_a_long_name", "aoti_cuda"]
    text = _rendered(matrix_table(_matrix(names), width=width), width)
    assert "…" not in text and max(len(line.rstrip()) for line in text.splitlines()) <= width
    flat = " ".join(text.split())
    for name in names:
        assert name in _tokens(text)
        for t in TARGETS:
            assert f"{t}: unsupported" in flat


def test_compat_matrix_wraps_labels_between_words_when_they_fit():
    from envctl.cli.compat_cmds import matrix_table

    targets = ["pytorch-2.13-cpu python/cpu", "pytorch-2.14-cu130 python/cpu"]
    data = {"targets": targets, "artifacts": ["scripted"],
            "cells": {"scripted": {t: {"status": "ok", "detail": ""} for t in targets}}}
    text = _rendered(matrix_table(data, width=60), 60)
    tokens = _tokens(text)
    assert {"pytorch-2.13-cpu", "pytorch-2.14-cu130", "python/cpu"} <= tokens  # never split mid-word
    assert "=" not in text


@pytest.mark.torch
def test_compat_and_artifact_tables_keep_every_value_at_80(tmp_path, monkeypatch, request):
    import torch

    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    monkeypatch.setenv("ENVCTL_ARTIFACTS", str(tmp_path / "store"))
    inputs = tmp_path / "inputs.pt"
    torch.save((torch.ones(2),), inputs)
    torch.jit.script(Double()).save(tmp_path / "double.pt")
    # An interpreter at a long path (that still fits a line): the column label is python:PATH python/cpu.
    long_dir = Path(tempfile.mkdtemp(prefix="envctl-")) / "candidate-torch-venv" / "bin"
    request.addfinalizer(lambda: shutil.rmtree(long_dir.parent.parent))
    long_dir.mkdir(parents=True)
    (long_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (long_dir / "python").chmod(0o755)
    added = envctl("artifacts", "add", str(tmp_path / "double.pt"), "--name",
                   "double_traced_on_the_workstation_before_the_upgrade", "--inputs", str(inputs),
                   "--python", sys.executable, columns=80)
    assert added.returncode == 0, added.stderr
    run = envctl("compat", "run", "--python", str(long_dir / "python"), columns=80)
    assert run.returncode == 0, run.stderr
    matrix = json.loads(envctl("compat", "matrix", "--json", columns=80).stdout)
    values = matrix["targets"] + matrix["artifacts"] + ["ok"]
    _assert_words_whole(envctl("compat", "matrix", columns=80), 80, values)
    listing = json.loads(envctl("artifacts", "list", "--json", columns=80).stdout)
    values = [v for a in listing for v in (a["name"], a["kind"], a["sha256"][:12], str(a["size"]),
                                           a["info"]["format_version"], a["info"]["torch_version"] or "-")]
    _assert_words_whole(envctl("artifacts", "list", columns=80), 80, values)


@pytest.mark.torch
def test_smoke_checks_keep_every_value_at_80():
    result = envctl("smoke", "--python", sys.executable, "--checks-only", "--gpus", "none", columns=80)
    doc = json.loads(envctl("smoke", "--python", sys.executable, "--checks-only", "--gpus", "none", "--json",
                            columns=80).stdout)
    _assert_words_whole(result, 80, [v for c in doc["checks"] for v in (c["status"], c["name"], c["message"])])


def test_show_keeps_hashes_and_paths_whole_at_80(project):
    result = envctl("show", "pytorch-2.14-cu130", columns=80)
    info = json.loads(envctl("show", "pytorch-2.14-cu130", "--json", columns=80).stdout)
    values = [info["spec_hash"], info["lock_inputs_hash"], info["lock"]["path"], info["spec"]["base"],
              *(f"{k} {v}" for k, v in info["cuda_libraries"].items())]
    _assert_words_whole(result, 80, values)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["image", "pytorch-2.14-cu130"]  # a value that fits stays beside its key
    assert lines[lines.index("content hash") + 1].split()[0] == info["spec_hash"]  # one too wide goes under it


def test_control_bytes_from_a_document_reach_no_terminal(tmp_path):
    """A bench document's model name with ESC sequences (clear screen, red) is shown escaped."""
    import json
    import os
    import subprocess
    import sys

    doc = {"schema": "envctl.probe/1", "device": "cpu", "level": "quick", "env": {"gpus": [], "torch": {}},
           "machine": {"groups": []},
           "benchmarks": [{"model": "\x1b[2J\x1b[31mevil", "dtype": "fp32", "batch": 1, "mode": "eager",
                           "status": "ok", "median_ms": 1.0, "ci_low_ms": 0.9, "ci_high_ms": 1.1}]}
    path = tmp_path / "ansi.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, "-m", "envctl", "bench", "show", str(path)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\\x1b[2J\\x1b[31mevil" in out.stdout
