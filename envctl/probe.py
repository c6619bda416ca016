"""The smoke probe (``envctl/probes/smoke.py``) as a task, in an image or an interpreter.

The probe depends on the standard library and torch alone; it is mounted
read-only into the container (never baked into the image), or read where it is
by a native interpreter, and prints one JSON document, which this module parses
into a ``ProbeReport``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envctl.errors import ProbeError
from envctl.lock import LockedEnv
from envctl.spec import ImageSpec

PROBE_DIR = Path(__file__).resolve().parent / "probes"
SCHEMA = "envctl.probe/1"
IN_CONTAINER = "/opt/envctl-probe"
TIMEOUTS = {"quick": 300, "standard": 1200, "full": 3600}


@dataclass(frozen=True)
class ProbeReport:
    document: dict[str, Any]
    exit_code: int | None
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.document.get("ok")) and self.exit_code == 0

    @property
    def checks(self) -> list[dict]:
        return self.document.get("checks") or []

    @property
    def failed(self) -> list[dict]:
        return [c for c in self.checks if c.get("status") == "fail"]

    @property
    def benchmarks(self) -> list[dict]:
        return self.document.get("benchmarks") or []

    @property
    def gpu(self) -> str | None:
        gpus = (self.document.get("env") or {}).get("gpus") or []
        return ", ".join(sorted({g.get("name", "?") for g in gpus})) or None

    @property
    def driver(self) -> str | None:
        return (self.document.get("env") or {}).get("driver_version")


def check_gpus(value: str) -> str:
    """--gpus: all, none, or a count."""
    from envctl.errors import UsageError

    if value in ("all", "none") or value.isdigit():
        return value
    raise UsageError(f"--gpus {value}: expected all, none or a GPU count", hint="e.g. --gpus 1")


def probe_config(spec: ImageSpec | None, lock: LockedEnv | None, *, gpus: str, level: str,
                 env_tree: str | None = None) -> dict[str, Any]:
    """What the probe should expect and run, from the spec, its lock and the image's tree hash label."""
    config: dict[str, Any] = {"gpus": gpus if gpus in ("all", "none") else int(check_gpus(gpus)), "level": level}
    if spec is not None:
        config["expect"] = {
            "torch": spec.torch, "cuda": spec.cuda_version,
            "gpu_required": spec.is_gpu and gpus not in ("none", "0"),
            "packages": ({"pip": lock.pip_pins() if lock.pip else None,
                          "conda": {p.name: f"{p.version}-{p.build}" for p in lock.conda} if lock.conda else None}
                         if lock is not None and (lock.pip or lock.conda) else None),
        }
        if env_tree:
            config["expect"]["env_tree"] = env_tree
        if spec.cuda_version:
            from envctl.matrix import load_matrix

            arches, _ptx = load_matrix().arch_list(spec.cuda_version, spec.torch)
            config["expect"]["arch_list"] = arches
        sm = spec.smoke
        config["benchmark"] = {"models": list(sm.models), "dtypes": list(sm.dtypes),
                               "batch_sizes": list(sm.batch_sizes), "max_autotune": sm.max_autotune,
                               "compile_modes": [m for m in sm.compile_modes
                                                 if m != "max-autotune" or sm.max_autotune]}
    return config


def parse_output(stdout: str, stderr: str, exit_code: int | None, where: str) -> dict[str, Any]:
    """The probe's one JSON document, or ProbeError naming what went wrong."""
    text = stdout.strip()
    if not text:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        raise ProbeError(f"the probe printed nothing in {where} (exit {exit_code}): {tail or 'no output'}",
                         hint="is torch installed there? run envctl smoke --python PATH to see")
    try:
        doc = json.loads(text.splitlines()[-1] if not text.startswith("{") else text)
    except json.JSONDecodeError:
        raise ProbeError(f"the probe's output in {where} is not JSON: {text[:200]}") from None
    if doc.get("schema") != SCHEMA:
        raise ProbeError(f"the probe in {where} answered schema {doc.get('schema')!r}, expected {SCHEMA}")
    if doc.get("error") and not doc.get("checks"):
        raise ProbeError(f"the probe in {where} refused to run: {doc['error']}")
    return doc


def probe_task(image: str | None, config: dict[str, Any], config_dir: Path, *, gpus: str, level: str,
               checks_only: bool = False, labels: dict[str, str] | None = None, python: str = "python"):
    """The probe as a task any executor runs: probe files and its config mounted read-only (they
    travel with a remote job), no network. Writes ``config.json`` into ``config_dir``.  ``image``
    None: run natively by ``python`` (an interpreter where it runs), reading the same files."""
    from envctl.executors import Mount, Task

    cfg = config_dir / "config.json"
    cfg.write_text(json.dumps(config))
    cfg.chmod(0o644)
    config_dir.chmod(0o755)
    return Task(name="probe", image=image,
                command=(python, f"{IN_CONTAINER}/smoke.py", "--config", "/opt/envctl-config/config.json",
                         "--level", level) + (("--checks-only",) if checks_only else ()),
                mounts=(Mount(PROBE_DIR, IN_CONTAINER), Mount(config_dir, "/opt/envctl-config")),
                gpus=gpus, network="none", timeout_s=TIMEOUTS[level], labels=labels or {})


def report_from(result, where: str) -> ProbeReport:
    """The probe's report from a finished task, or ProbeError naming what went wrong."""
    if result.error:
        raise ProbeError(f"the probe did not run in {where}: {result.error}")
    if result.timed_out:
        raise ProbeError(f"the probe ran past {result.task.timeout_s:.0f}s in {where}", hint="try --quick")
    doc = parse_output(result.stdout, result.stderr, result.exit_code, where)
    return ProbeReport(doc, result.exit_code, result.seconds)
