"""`envctl show`'s two hashes have two names, and a current lock reads as current (issue #15)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def envctl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env, timeout=60)


def test_show_names_the_content_hash_and_the_lock_inputs_hash(project):
    result = envctl("show", "pytorch-2.13-cpu")
    assert result.returncode == 0, result.stderr
    rows = {line[:18].strip(): line[18:].strip() for line in result.stdout.splitlines()}
    header = (project / "locks" / "pytorch-2.13-cpu.conda-lock.yml").read_text().splitlines()
    recorded = next(re.search(r"sha256:[0-9a-f]{64}", h).group(0) for h in header if h.startswith("# spec inputs:"))
    assert "spec hash" not in rows
    assert rows["lock inputs hash"].startswith(recorded) and "the lock is current" in rows["lock inputs hash"]
    assert rows["content hash"].startswith("sha256:") and not rows["content hash"].startswith(recorded)


def test_show_says_when_the_lock_inputs_moved(project):
    path = project / "images" / "pytorch-2.13-cpu.yaml"
    path.write_text(path.read_text().replace("numpy==2.3.5", "numpy==2.3.4"))
    out = envctl("show", "pytorch-2.13-cpu").stdout
    line = next(line for line in out.splitlines() if line.startswith("lock inputs hash"))
    assert "the lock is stale" in line
