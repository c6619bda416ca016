"""`envctl history` over a real records database: every run at its start, its target named as what it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from envctl.records import Records, record_run


def envctl(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_a_run_cannot_be_recorded_without_its_start():
    # A default of "now" made a build read as its finish time beside verifications' start.
    with pytest.raises(TypeError, match="started"):
        Records().add_run(kind="build", image="pytorch-2.13-cpu", ok=True, duration_s=120.9)


def test_history_lists_start_times_and_names_the_target():
    start = time.mktime((2026, 12, 6, 9, 30, 0, 0, 0, -1))
    record_run(kind="build", image="pytorch-2.13-cpu", ok=True, image_id="sha256:" + "ab" * 32, started=start,
               duration_s=120.9, summary="envctl/pytorch-2.13-cpu:ed96e1c80e45 1410000000 bytes")
    record_run(kind="setup", image="pytorch-2.13-cpu", ok=True, image_id="/home/someone/envs/torch",
               started=start + 600, duration_s=80.2, summary="created")
    record_run(kind="smoke", image="local", ok=False, image_id="/usr/bin/python3", started=start + 900,
               duration_s=2.3, summary="pip drift: 3 extra")
    result = envctl("history", "--wide")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[1]
    assert [c.strip() for c in header.split("┃")[1:-1]] == ["id", "started", "kind", "image", "ok", "target", "gpu",
                                                             "seconds", "summary"]
    rows = {line.split("│")[3].strip(): [c.strip() for c in line.split("│")[1:-1]]
            for line in result.stdout.splitlines() if line.startswith("│")}
    assert rows["build"][1] == "2026-12-06 09:30:00" and rows["build"][5] == "abababababab"
    assert rows["setup"][1] == "2026-12-06 09:40:00" and rows["setup"][5] == "/home/someone/envs/torch"
    assert rows["smoke"][5] == "/usr/bin/python3" and rows["smoke"][4] == "fail"
    assert [r["started"] for r in json.loads(envctl("history", "--json").stdout)] == [start + 900, start + 600, start]
    bench = envctl("history", "--kind", "bench")  # recorded by bench compare --run: a kind to filter by
    assert bench.returncode == 0 and not {"build", "setup", "smoke"} & set(bench.stdout.split())


def test_history_help_exactly():
    assert envctl("history", "-h").stdout == """\
                                                                                
 Usage: envctl history [OPTIONS] [NAME]                                         
                                                                                
 List recorded builds, verifications and setups, newest first.                  
                                                                                
 Each run is listed at the time it started, whatever its kind; its target is    
 what ran: the image id of a build, verify or bench run, the prefix of a setup, 
 the interpreter of a smoke run.                                                
                                                                                
╭─ Arguments ──────────────────────────────────────────────────────────────────╮
│   name      <str>  Only this image.                                          │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Options ────────────────────────────────────────────────────────────────────╮
│ --kind           <str>  build, verify, smoke, bench or setup.                │
│ --limit          <int>  How many rows. [default: 20]                         │
│ --json                  Print JSON.                                          │
│ --wide                  One table at its full width, whatever the terminal.  │
│ --help   -h             Show this message and exit.                          │
╰──────────────────────────────────────────────────────────────────────────────╯

"""
