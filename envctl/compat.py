"""``envctl compat``: which artifacts load and give the same answers under which environment.

A target is a built image (one container runs every artifact, each in its own
forked child, with no network, read-only mounts and memory/CPU/process limits)
or a local interpreter.  Results are kept in the records database keyed by
artifact hash and image id; the upgrade gate compares two targets.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from envctl.artifacts import Artifact, Registry
from envctl.errors import EnvctlError, ProbeError
from envctl.records import Records

RUNNER = Path(__file__).resolve().parent / "probes" / "compat_runner.py"
SCHEMA = "envctl.compat/1"
STATUSES = ("ok", "load-error", "run-error", "mismatch", "crash", "timeout")
LIMITS = {"mem_limit": "2g", "nano_cpus": 2_000_000_000, "pids_limit": 512}


@dataclass(frozen=True)
class Target:
    label: str  # the image name, or python:PATH
    kind: str  # image | python
    ref: str  # image id, or interpreter path

    @property
    def key(self) -> str:
        return self.ref if self.kind == "image" else f"python:{self.ref}"


@dataclass(frozen=True)
class Outcome:
    artifact: Artifact
    target: Target
    status: str
    detail: str
    seconds: float | None = None


def python_target(path: str) -> Target:
    import os

    resolved = Path(path).expanduser()
    if not resolved.is_file() or not os.access(resolved, os.X_OK):
        raise EnvctlError(f"no interpreter at {path} (not an executable file)",
                          hint="give the path of a python executable, e.g. ~/envs/x/bin/python")
    return Target(label=f"python:{resolved}", kind="python", ref=str(resolved))


def image_target(project, engine, name: str) -> Target:
    from envctl.build import find_built
    from envctl.lock import require_current_lock

    spec = project.resolve(name)
    lock = require_current_lock(spec, project.lock_path(spec.name))
    image = find_built(engine, spec, lock)
    if image is None:
        raise EnvctlError(f"no image of {spec.name} built from the current spec and lock",
                          hint=f"run: envctl build {spec.name}")
    return Target(label=spec.name, kind="image", ref=image.id)


def _manifest(registry: Registry, artifacts: list[Artifact], root: str) -> list[dict]:
    entries = []
    for art in artifacts:
        base = f"{root}/{art.sha256}"
        entries.append({"id": art.sha256, "kind": art.kind, "artifact": f"{base}/{art.info['file']}",
                        "inputs": f"{base}/{art.info['inputs']}" if art.info.get("inputs") else None,
                        "outputs": f"{base}/{art.info['outputs']}" if art.info.get("outputs") else None})
    return entries


MAX_TIMEOUT = 24 * 3600.0


def check_timeout(value: float) -> float:
    """Seconds per artifact: finite, positive, at most a day (0, -5, nan, inf are not timeouts)."""
    import math

    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        from envctl.errors import UsageError

        raise UsageError(f"--timeout {value}: give seconds per artifact, more than 0 and at most {MAX_TIMEOUT:.0f}")
    return value


def _clean(text: str) -> str:
    """A detail from inside the sandbox: printable text only (no terminal escapes), one line, capped."""
    import re

    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", str(text))[:500]


def run(target: Target, artifacts: list[Artifact], registry: Registry, *, engine=None,
        timeout: float = 60.0) -> list[Outcome]:
    """Check every artifact under one target; one container (or interpreter) start in all."""
    if not artifacts:
        return []
    check_timeout(timeout)
    for art in artifacts:  # a swapped or missing stored file must not earn a verdict under the good hash
        registry.verify(art)
    overall = timeout * len(artifacts) + 120
    with tempfile.TemporaryDirectory(prefix="envctl-compat-") as tmp:
        manifest = Path(tmp) / "manifest.json"
        Path(tmp).chmod(0o755)
        if target.kind == "image":
            manifest.write_text(json.dumps(_manifest(registry, artifacts, "/artifacts")))
            manifest.chmod(0o644)
            result = engine.run(
                target.ref, ["python", "/opt/envctl-probe/compat_runner.py", "--manifest",
                             "/opt/envctl-compat/manifest.json", "--timeout", str(timeout)],
                mounts=[(str(RUNNER.parent), "/opt/envctl-probe", True), (str(registry.root), "/artifacts", True),
                        (tmp, "/opt/envctl-compat", True)],
                network="none", timeout=overall, sandbox=True, **LIMITS)
            stdout, stderr, code = result.stdout, result.stderr, result.exit_code
            if result.timed_out:
                raise ProbeError(f"compat run in {target.label} ran past {overall:.0f}s")
        else:
            manifest.write_text(json.dumps(_manifest(registry, artifacts, str(registry.root))))
            try:
                proc = subprocess.run([target.ref, str(RUNNER), "--manifest", str(manifest), "--timeout",
                                       str(timeout)], capture_output=True, text=True, timeout=overall)
            except subprocess.TimeoutExpired:
                raise ProbeError(f"compat run with {target.label} ran past {overall:.0f}s") from None
            except OSError as exc:
                raise ProbeError(f"cannot run {target.ref}: {exc.strerror}") from None
            stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    doc = _parse(stdout, stderr, code, target.label)
    by_id = {r["id"]: r for r in doc["results"]}
    out = []
    for a in artifacts:
        res = by_id.get(a.sha256) or {"status": "crash", "detail": "the runner gave no result for it"}
        status = res.get("status") if res.get("status") in STATUSES else "crash"
        out.append(Outcome(a, target, status, _clean(res.get("detail", "")), res.get("seconds")))
    return out


def _parse(stdout: str, stderr: str, code: int | None, where: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("schema") == SCHEMA and "results" in doc:
            return doc
    tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output"
    raise ProbeError(f"the compat runner in {where} gave no result (exit {code}): {tail}")


def record(records: Records, outcomes: list[Outcome]) -> None:
    """All outcomes in one transaction; when the database refuses, they are saved to a file it names."""
    now = time.time()
    sql = "INSERT OR REPLACE INTO compat (artifact_sha256, image, image_id, status, detail, checked) VALUES (?,?,?,?,?,?)"
    rows = [(o.artifact.sha256, o.target.label, o.target.key, o.status, o.detail, now) for o in outcomes]
    records.write_many([(sql, r) for r in rows], what=f"{len(rows)} compat results", payload=[
        {"artifact": o.artifact.name, "sha256": o.artifact.sha256, "target": o.target.label,
         "image_id": o.target.key, "status": o.status, "detail": o.detail, "checked": now} for o in outcomes])


def matrix(records: Records) -> dict:
    """Artifacts x targets, the newest result of each label."""
    rows = list(records.execute(
        "SELECT a.name, c.image, c.image_id, c.status, c.detail, c.checked FROM compat c "
        "JOIN artifacts a ON a.sha256 = c.artifact_sha256 ORDER BY c.checked"))
    labels: list[str] = []
    cells: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["image"] not in labels:
            labels.append(r["image"])
        cells.setdefault(r["name"], {})[r["image"]] = {"status": r["status"], "detail": r["detail"],
                                                       "image_id": r["image_id"]}
    return {"targets": labels, "artifacts": sorted(cells), "cells": cells}


def regressions(before: list[Outcome], after: list[Outcome]) -> list[tuple[Outcome, Outcome]]:
    """Every artifact that is ok under the first target and not ok under the second."""
    after_by = {o.artifact.sha256: o for o in after}
    return [(b, after_by[b.artifact.sha256]) for b in before
            if b.status == "ok" and b.artifact.sha256 in after_by and after_by[b.artifact.sha256].status != "ok"]


_COLORS = {"ok": "#1a7f37", "load-error": "#cf222e", "run-error": "#bc4c00", "mismatch": "#9a6700",
           "crash": "#82071e", "timeout": "#6e7781"}


def render_html(data: dict) -> str:
    """A self-contained page: the matrix with coloured cells, details on hover."""
    head = "".join(f"<th>{html.escape(t)}</th>" for t in data["targets"])
    body = []
    for name in data["artifacts"]:
        cells = []
        for t in data["targets"]:
            cell = data["cells"][name].get(t)
            if cell is None:
                cells.append('<td class="none">-</td>')
            else:
                cells.append(f'<td style="background:{_COLORS.get(cell["status"], "#999")}" '
                             f'title="{html.escape(cell["detail"] or "")}">{html.escape(cell["status"])}</td>')
        body.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    legend = " ".join(f'<span style="background:{c}">{s}</span>' for s, c in _COLORS.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>envctl compatibility matrix</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #d0d7de; padding: .4em .8em; text-align: left; }}
td {{ color: white; font-weight: 600; }} td.none {{ color: #6e7781; background: #f6f8fa; }}
.legend span {{ color: white; padding: .2em .5em; margin-right: .3em; }}
</style></head><body>
<h1>Artifact compatibility</h1>
<p class="legend">{legend}</p>
<table><tr><th>artifact</th>{head}</tr>
{chr(10).join(body)}
</table></body></html>
"""


def compute_reference(target: Target, folder: Path, kind: str, file: str, *, name: str, engine=None,
                      timeout: float = 60.0) -> Path:
    """Run the artifact in ``folder`` on its sample inputs under ``target``; write folder/outputs.pt.

    ``timeout`` is the same per-artifact limit as compat's, plus 30 s for the start."""
    check_timeout(timeout)
    limit = timeout + 30  # the interpreter (or container) start and the torch import
    with tempfile.TemporaryDirectory(prefix="envctl-ref-") as tmp:
        out = Path(tmp) / "outputs.pt"
        Path(tmp).chmod(0o777)
        if target.kind == "image":
            result = engine.run(
                target.ref, ["python", "/opt/envctl-probe/compat_runner.py", "--reference", kind,
                             f"/artifact/{file}", "/artifact/inputs.pt", "/out/outputs.pt"],
                mounts=[(str(RUNNER.parent), "/opt/envctl-probe", True), (str(folder), "/artifact", True),
                        (tmp, "/out", False)], network="none", timeout=limit, sandbox=True, **LIMITS)
            stdout, code, timed_out = result.stdout, result.exit_code, result.timed_out
        else:
            try:
                proc = subprocess.run([target.ref, str(RUNNER), "--reference", kind, str(folder / file),
                                       str(folder / "inputs.pt"), str(out)], capture_output=True, text=True,
                                      timeout=limit)
                stdout, code, timed_out = proc.stdout, proc.returncode, False
            except subprocess.TimeoutExpired:
                stdout, code, timed_out = "", None, True
            except OSError as exc:
                stdout, code, timed_out = f"cannot run {target.ref}: {exc.strerror}", None, False
        if timed_out or code != 0 or not out.exists():
            detail = (f"no answer within {limit:.0f}s" if timed_out else
                      _clean(stdout.strip().splitlines()[-1]) if stdout.strip() else f"exit {code}")
            raise EnvctlError(f"cannot compute reference outputs of {name} under {target.label}: {detail}; "
                              f"nothing was registered",
                              hint="give them with --outputs FILE, or pick an environment where it runs")
        shutil.copyfile(out, folder / "outputs.pt")
    return folder / "outputs.pt"
