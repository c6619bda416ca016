"""``envctl compat``: which artifacts load and give the same answers under which environment.

A target is a built image or a local interpreter; a run chooses the runtime (Python, or
libtorch from C++ through a loader compiled in the target) and the device (auto, cpu, cuda).
Results are kept in the records database keyed by artifact hash, target, runtime, device and
the fleet target they ran on; the upgrade gate compares two targets.  The modules: workflow
(plan, then run on an executor: the local engine or a fleet target), targets (where), execute
(the runner as a task, and running it), sandbox (the host's sandbox around a local
interpreter), loader (the C++ loader), results (outcomes, records, matrix, gate), report (HTML,
JUnit).
"""

from __future__ import annotations

from envctl.compat.execute import LIMITS, RUNNER, SCHEMA, compute_reference, gpus_for, run
from envctl.compat.loader import Loader, ensure_loader
from envctl.compat.report import render_html, render_junit
from envctl.compat.results import STATUSES, Outcome, matrix, record, regressions
from envctl.compat.targets import (DEVICES, MAX_TIMEOUT, RUNTIMES, Target, check_choice, check_timeout,
                                   image_target, python_target)

__all__ = ["DEVICES", "LIMITS", "MAX_TIMEOUT", "RUNNER", "RUNTIMES", "SCHEMA", "STATUSES", "Loader", "Outcome",
           "Target", "check_choice", "check_timeout", "compute_reference", "ensure_loader", "gpus_for",
           "image_target", "matrix", "python_target", "record", "regressions", "render_html", "render_junit", "run"]
