"""The "where it runs" options turned into the executor's settings in one place
(envctl/cli/where_opts.py): verify, smoke, compat run and matrix verify give the same place
the same settings, and the same bad place the same one line, before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from envctl.cli.where_opts import executor_options

SLURM = dict(partition="gpu", gres="gpu:1", constraint=None, nodelist=None, time_limit="00:20:00", account=None,
             wait=30.0)


def test_the_command_line_s_names_become_fleet_yaml_s():
    assert executor_options(on="slurm", **SLURM) == dict(
        partition="gpu", gres="gpu:1", constraint=None, nodelist=None, time="00:20:00", account=None, wait=30.0,
        context=None, namespace=None, gpu_product=None)


@pytest.mark.parametrize("on, gpus, limit", [("kubernetes", "2", 2), ("kubernetes", "all", None),
                                             ("kubernetes", None, None), ("slurm", "2", None)])
def test_a_gpu_count_is_the_kubernetes_job_s_limit_alone(on, gpus, limit):
    assert executor_options(on=on, gpus=gpus, **SLURM).get("gpus") == limit


@pytest.mark.parametrize("command", [["smoke"], ["verify", "pytorch-2.13-cpu"],
                                     ["compat", "run", "--image", "pytorch-2.13-cpu"], ["matrix", "verify"]])
def test_every_command_says_a_bad_slurm_option_alike(command, project):
    proc = subprocess.run([sys.executable, "-m", "envctl", *command, "--on", "slurm", "--time", "banana"],
                          capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["error: --time: 'banana' is not a Slurm time such as 30, 00:20:00 or 1-00:00:00"]
