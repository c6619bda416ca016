"""Fixtures for the executor tests: the real one-node Slurm cluster (scripts/slurm-up.sh).

Tests that need it are marked ``slurm``; a selected one whose cluster cannot start FAILS, never
skips (deselect with ``-m "not slurm"`` on a laptop).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "envctl/debian:bookworm-minimal"  # python3, no toolchain: made by `envctl base --no-toolchain`


def slurm_up() -> subprocess.CompletedProcess:
    """scripts/slurm-up.sh: starts the cluster, or mends its node (resumed, its GRES set again)."""
    return subprocess.run(["bash", str(REPO / "scripts" / "slurm-up.sh")], capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="session")
def slurm_cluster(docker_client) -> str:
    """The cluster is up (slurm-up.sh is idempotent) and the jobs' image is in the engine;
    the node's name."""
    up = slurm_up()
    if up.returncode != 0:
        pytest.fail(f"the Slurm cluster did not start (scripts/slurm-up.sh exit {up.returncode}): "
                    f"{up.stderr.strip()[-1500:]}", pytrace=False)
    try:
        docker_client.images.get(IMAGE)
    except Exception:  # noqa: BLE001 - any failure to find it is the same verdict
        pytest.fail(f"{IMAGE} is missing: make it with `envctl base --tag {IMAGE} --no-toolchain`", pytrace=False)
    return socket.gethostname().split(".")[0]


def squeue(*args: str) -> str:
    return subprocess.run(["squeue", "--noheader", *args], capture_output=True, text=True, check=True).stdout
