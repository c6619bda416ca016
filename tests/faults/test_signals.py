"""Item 4 without an engine: SIGTERM is handled like SIGINT (real processes, real signals).

Children stopped, temp folders removed, exit 143, and a prefix marked complete only by the
last step, so an interrupted setup is never called "up to date".
"""

from __future__ import annotations

import signal

from tests.faults.conftest import alive, child_with, envctl, start_envctl, wait_for


def test_sigterm_during_setup_stops_pip_and_leaves_the_prefix_incomplete(pip_project, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**pip_project, "TMPDIR": str(tmp)}
    prefix = tmp_path / "P"
    proc = start_envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=env)
    pip = wait_for(lambda: child_with(proc.pid, "--require-hashes"), timeout=120, interval=0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert not alive(pip)
    assert list(tmp.iterdir()) == []  # envctl-setup-* gone
    assert not (prefix / "envctl-activate.sh").exists()
    resumed = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "up to date" not in resumed.stderr and (prefix / "envctl-activate.sh").exists()


def test_sigterm_during_lock_stops_pip_and_keeps_the_lock(pip_project, tmp_path):
    from pathlib import Path

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    lock = Path(pip_project["ENVCTL_PROJECT"]) / "locks" / "fixture-pip.conda-lock.yml"
    before = lock.read_bytes()
    proc = start_envctl("lock", "fixture-pip", "--upgrade", "mpmath", env={**pip_project, "TMPDIR": str(tmp)})
    # the resolver child: uv (uv pip compile), or pip (--dry-run) where uv cannot serve
    pip = wait_for(lambda: child_with(proc.pid, "pip compile") or child_with(proc.pid, "--dry-run"),
                   timeout=120, interval=0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert not alive(pip)
    assert list(tmp.iterdir()) == []  # envctl-uv-* / envctl-pip-* gone
    assert lock.read_bytes() == before


def test_sigterm_during_smoke_stops_the_probe_and_the_children_it_started(tmp_path):
    # A stand-in interpreter: answers envctl's look at it at once, then as the probe starts a child
    # (as torch's compile workers are) and waits on it.
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\ncase "$1" in -c) echo a stand-in; exit 0 ;; esac\nsleep 313 &\nwait\n')
    python.chmod(0o755)
    proc = start_envctl("smoke", "--python", str(python), "--gpus", "none")
    worker = wait_for(lambda: child_with(proc.pid, "sleep 313"), timeout=60, interval=0.01)
    probe = child_with(proc.pid, "smoke.py")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    wait_for(lambda: not alive(worker) and not alive(probe), timeout=10)

