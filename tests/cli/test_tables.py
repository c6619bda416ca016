"""Tables at the widths people's terminals have: nothing cut, nothing dropped (issue #15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

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
    rows = [["pytorch-2.14-cu130-pypi", "2.14.1", "cu130", "3.11", "pytorch-index", "not locked",
             "a long note that has to wrap somewhere " * 3]]
    text = _rendered(render(columns, rows, width=width), width)
    _assert_whole(text, width, rows[0])
    first_data_line = next(line for line in text.splitlines() if "pytorch-2.14-cu130-pypi" in line)
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
    record_run(kind="verify", image="pytorch-2.14-cu130-pypi", ok=False, image_id="sha256:" + "ab" * 32,
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
