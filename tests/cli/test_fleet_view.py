"""`envctl fleet` over a real records database: image x target, verified / failed / never, the
GPU and driver of each target, and the compile speedups from the recorded documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from envctl.records import Records


def envctl(*args: str, columns: int = 200) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _document(speedup: float, conclusive: bool = True) -> dict:
    bench = {"model": "mlp", "dtype": "fp32", "batch": 4, "status": "ok"}
    return {"schema": "envctl.probe/1", "ok": True, "checks": [],
            "benchmarks": [bench | {"mode": "eager", "median_ms": 2.0},
                           bench | {"mode": "compile-default", "median_ms": 1.0,
                                    "speedup": {"median": speedup, "low": speedup - 0.1, "high": speedup + 0.1,
                                                "conclusive": conclusive, "verdict": "faster", "why": []}}]}


def test_the_fleet_view_shows_each_image_on_each_target(project, tmp_path):
    (project / "fleet.yaml").write_text("version: 1\ntargets:\n  h100: {on: slurm, partition: gpu}\n"
                                        "  a100: {on: slurm, constraint: a100}\n")
    records = Records()
    start = time.mktime((2026, 12, 6, 9, 30, 0, 0, 0, -1))
    where = {"executor": "slurm", "job_id": "41", "node": "gpu-07", "gpu": "NVIDIA H100 80GB HBM3",
             "driver": "550.54", "runtime": "docker"}
    records.add_run(kind="verify", image="pytorch-2.13-cpu", ok=False, started=start - 60, target="h100",
                    where=where, summary="older run")
    records.add_run(kind="verify", image="pytorch-2.13-cpu", ok=True, started=start, target="h100", where=where,
                    gpu="NVIDIA H100 80GB HBM3", driver="550.54", document=_document(1.84))
    records.add_run(kind="verify", image="pytorch-2.8-cu128", ok=False, started=start, target="a100",
                    where=where | {"node": "gpu-02", "gpu": "NVIDIA A100-SXM4-40GB", "driver": "535.1"},
                    summary="cuda version: 12.2 < 12.8", document=_document(0.9, conclusive=False))
    records.add_run(kind="verify", image="pytorch-2.13-cpu", ok=True, started=start, document=_document(1.2))

    data = json.loads(envctl("fleet", "--json").stdout)
    assert [t["name"] for t in data["targets"]] == ["h100", "a100", "local"]
    assert data["targets"][0] == {"name": "h100", "gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54",
                                       "node": "gpu-07"}
    cpu = data["cells"]["pytorch-2.13-cpu"]
    assert cpu["h100"]["status"] == "verified" and cpu["h100"]["job_id"] == "41"
    assert cpu["h100"]["speedups"] == [{"model": "mlp", "dtype": "fp32", "batch": 4, "speedup": 1.84,
                                        "conclusive": True}]
    assert cpu["a100"] == {"status": "never"} and cpu["local"]["status"] == "verified"
    assert data["cells"]["pytorch-2.8-cu128"]["a100"]["status"] == "failed"
    assert data["cells"]["pytorch-2.3-cu118"]["h100"] == {"status": "never"}

    table = envctl("fleet")
    assert table.returncode == 0, table.stderr
    assert "h100 (NVIDIA H100 80GB HBM3, driver 550.54)" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "pytorch-2.13-cpu" in line)
    assert "verified 12-06 09:30 compile 1.84x" in row and "never" in row
    failed = next(line for line in table.stdout.splitlines() if "pytorch-2.8-cu128 " in line)
    assert "failed 12-06 09:30" in failed and "compile" not in failed  # an inconclusive speedup is not shown

    page = tmp_path / "fleet.html"
    assert envctl("fleet", "--html", str(page)).returncode == 0
    text = page.read_text()
    assert "<title>envctl fleet</title>" in text and "node gpu-02, gpu NVIDIA A100-SXM4-40GB" in text
    assert "cuda version: 12.2 &lt; 12.8" in text and "mlp fp32 b4: 0.90x (inconclusive)" in text
