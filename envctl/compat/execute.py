"""Running artifacts under one target: one container (or interpreter) start for all of them.

In an image, one sandboxed container (no network, read-only mounts, memory/CPU/process
limits) runs probes/compat_runner.py, which checks every artifact in its own child process:
a forked Python child, or a child of the C++ loader under the libtorch runtime.  That container
is a ``Task`` (``compat_task``) that any executor runs: the local engine here, a Slurm or
Kubernetes target through the workflow (workflow.py), the runner and the artifacts travelling
with it; ``outcomes_from`` reads its result.  GPUs reach the container through the engine's
device requests.  Under a local interpreter the runner, the artifacts and the loader are copied
to a fresh folder and run in the host's sandbox (sandbox.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envctl.artifacts import Artifact, Registry
from envctl.compat.loader import BINARY, Loader, ensure_loader
from envctl.compat.results import STATUSES, Outcome
from envctl.compat.sandbox import Sandbox, choose, read_back, run_contained
from envctl.compat.targets import Target, check_choice, check_timeout, DEVICES, RUNTIMES
from envctl.errors import EngineError, EnvctlError, ProbeError

if TYPE_CHECKING:
    from envctl.executors import Task, TaskResult

RUNNER = Path(__file__).resolve().parent.parent / "probes" / "compat_runner.py"
SCHEMA = "envctl.compat/1"
LIMITS = {"mem_limit": "2g", "nano_cpus": 2_000_000_000, "pids_limit": 512}
MAX_MESSAGE = 20000


def _manifest(registry: Registry, artifacts: list[Artifact], root: str) -> list[dict]:
    entries = []
    for art in artifacts:
        base = f"{root}/{art.sha256}"
        entries.append({"id": art.sha256, "kind": art.kind, "artifact": f"{base}/{art.info['file']}",
                        "inputs": f"{base}/{art.info['inputs']}" if art.info.get("inputs") else None,
                        "outputs": f"{base}/{art.info['outputs']}" if art.info.get("outputs") else None,
                        "compiled_for": art.info.get("device") if art.kind == "aoti" else None})
    return entries


def _clean(text: str) -> str:
    """A detail from inside the sandbox: printable text only (no terminal escapes), one line, capped."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", str(text))[:500]


def _clean_message(text: str) -> str:
    """The whole message: lines kept, terminal escapes and other control characters dropped."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(text))
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "?", text).strip()[:MAX_MESSAGE]


def stage(registry: Registry, artifacts: list[Artifact], root: Path) -> Path:
    """Copies of the artifacts' files under ``root``, readable by the sandbox user and by no one
    able to change them: the store may be in a folder it cannot pass (under /root); and what a
    remote task carries (the selected artifacts, not the whole store).  Returns ``root``."""
    root.mkdir(mode=0o755)
    for art in artifacts:
        folder = root / art.sha256
        folder.mkdir(mode=0o755)
        for name in (art.info["file"], art.info.get("inputs"), art.info.get("outputs")):
            if name:
                shutil.copyfile(registry.folder(art.sha256) / name, folder / name)
                (folder / name).chmod(0o644)
    return root


def _run_local(box: Sandbox, args: list[str], *, stage: Path, timeout: float, gpu: bool) -> tuple[str, str, int]:
    """The runner copied into ``stage`` and run with ``args`` by the target's interpreter, in its
    sandbox; (stdout, stderr, exit code).  Raises subprocess.TimeoutExpired and OSError."""
    runner = stage / RUNNER.name
    shutil.copyfile(RUNNER, runner)
    runner.chmod(0o644)
    home = box.prepare(stage)
    cmd = box.command([box.python, str(runner), *args], stage=stage, home=home, seconds=timeout, gpu=gpu)
    proc = run_contained(cmd, timeout=timeout, env=box.environ(home), cwd=home)
    return proc.stdout, proc.stderr, proc.returncode


def gpus_for(engine, device: str) -> str | None:
    """Device requests for a container: all GPUs for cuda; for auto, when the engine has the
    NVIDIA runtime (a CPU-only host gets none, and auto then resolves to the CPU)."""
    if device == "cuda":
        return "all"
    if device == "auto":
        runtimes = (engine.info() or {}).get("Runtimes") or {}
        return "all" if "nvidia" in runtimes else None
    return None


def compat_task(target: Target, artifacts: list[Artifact], registry: Registry, folder: Path, *,
                artifacts_root: Path, timeout: float, device: str, runtime: str, loader: Loader | None = None,
                gpus: str | None = None, labels: dict[str, str] | None = None) -> Task:
    """The runner in ``target``'s image as a task any executor runs: the probe files, the artifacts
    (``artifacts_root``: the store, or the selected artifacts staged by ``stage``), the manifest
    (written into ``folder``) and the loader mounted read-only; sandboxed, no network, a timeout
    of every artifact's plus two minutes for the start."""
    from envctl.executors import Mount, Sandbox, Task

    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(_manifest(registry, artifacts, "/artifacts")))
    manifest.chmod(0o644)
    folder.chmod(0o755)
    options = ["--timeout", str(timeout), "--device", device, "--runtime", runtime]
    mounts = [Mount(RUNNER.parent, "/opt/envctl-probe"), Mount(artifacts_root, "/artifacts"),
              Mount(folder, "/opt/envctl-compat")]
    if loader is not None:
        mounts.append(Mount(loader.folder, "/opt/envctl-loader"))
        options += ["--loader", f"/opt/envctl-loader/{BINARY}"]
    return Task(name=f"compat-{runtime}", image=target.ref,
                command=("python", "/opt/envctl-probe/compat_runner.py", "--manifest",
                         "/opt/envctl-compat/manifest.json", *options),
                mounts=tuple(mounts), gpus=gpus, network="none", timeout_s=timeout * len(artifacts) + 120,
                sandbox=Sandbox(exec_tmp=any(a.kind == "aoti" for a in artifacts), **LIMITS), labels=labels or {})


def outcomes_from(result: TaskResult, target: Target, artifacts: list[Artifact], *, runtime: str, device: str,
                  where: str, on: str | None = None) -> list[Outcome]:
    """Each artifact's outcome from a finished runner task (``where``: how errors name the place);
    ProbeError when the runner did not run or printed no document."""
    if result.error:
        raise ProbeError(f"the compat runner did not run in {where}: {result.error}")
    if result.timed_out:
        raise ProbeError(f"compat run in {where} ran past {result.task.timeout_s:.0f}s")
    doc = _parse(result.stdout, result.stderr, result.exit_code, where)
    return _outcomes(doc, target, artifacts, runtime=runtime, device=device, on=on,
                     where=dict(result.where) if on is not None else {})


def run(target: Target, artifacts: list[Artifact], registry: Registry, *, engine=None, timeout: float = 60.0,
        device: str = "auto", runtime: str = "python", loader: Loader | None = None,
        trust: bool = False) -> list[Outcome]:
    """Check every artifact under one target on one device with one runtime.  Under a local
    interpreter they run sandboxed (refused where no sandbox can be made) unless ``trust``."""
    if not artifacts:
        return []
    check_timeout(timeout)
    check_choice("--device", device, DEVICES)
    check_choice("--runtime", runtime, RUNTIMES)
    for art in artifacts:  # a swapped or missing stored file must not earn a verdict under the good hash
        registry.verify(art)
    box = choose(target.ref, trust=trust) if target.kind == "python" else None
    if runtime == "libtorch" and loader is None:
        loader = ensure_loader(target, engine=engine)
    if target.kind == "image":
        return _run_in_engine(target, artifacts, registry, engine=engine, timeout=timeout, device=device,
                              runtime=runtime, loader=loader)
    overall = timeout * len(artifacts) + 120
    options = ["--timeout", str(timeout), "--device", device, "--runtime", runtime]
    with tempfile.TemporaryDirectory(prefix="envctl-compat-") as tmp:  # a local interpreter: the host's sandbox
        manifest = Path(tmp) / "manifest.json"
        Path(tmp).chmod(0o755)
        stage(registry, artifacts, Path(tmp) / "artifacts")
        manifest.write_text(json.dumps(_manifest(registry, artifacts, str(Path(tmp) / "artifacts"))))
        manifest.chmod(0o644)
        if loader is not None:
            shutil.copy(loader.folder / BINARY, Path(tmp) / BINARY)
            options += ["--loader", str(Path(tmp) / BINARY)]
        try:
            stdout, stderr, code = _run_local(box, ["--manifest", str(manifest), *options], stage=Path(tmp),
                                              timeout=overall, gpu=device != "cpu")
        except subprocess.TimeoutExpired:
            raise ProbeError(f"compat run with {target.label} ran past {overall:.0f}s") from None
        except OSError as exc:
            raise ProbeError(f"cannot run {target.ref}: {exc.strerror}") from None
    doc = _parse(stdout, stderr, code, target.label, sandboxed=box is not None and box.confined)
    return _outcomes(doc, target, artifacts, runtime=runtime, device=device)


def _run_in_engine(target: Target, artifacts: list[Artifact], registry: Registry, *, engine, timeout: float,
                   device: str, runtime: str, loader: Loader | None) -> list[Outcome]:
    """The runner task on the local engine, the store mounted as it is (nothing copied)."""
    from envctl.executors import LocalEngine, run_tasks

    gpus = gpus_for(engine, device)
    with tempfile.TemporaryDirectory(prefix="envctl-compat-") as tmp:
        task = compat_task(target, artifacts, registry, Path(tmp), artifacts_root=registry.root, timeout=timeout,
                           device=device, runtime=runtime, loader=loader, gpus=gpus)
        try:
            [result] = run_tasks(LocalEngine(engine), [task])
        except EngineError as exc:
            if gpus is None:
                raise
            raise EngineError(str(exc), hint="this engine gives containers no GPU (the NVIDIA container "
                                             "toolkit is missing): use --device cpu or auto") from None
    return outcomes_from(result, target, artifacts, runtime=runtime, device=device, where=target.label)


def _outcomes(doc: dict, target: Target, artifacts: list[Artifact], *, runtime: str, device: str,
              on: str | None = None, where: dict[str, Any] | None = None) -> list[Outcome]:
    """The runner's document as an outcome per artifact (one it gave no result for: a crash)."""
    by_id = {r["id"]: r for r in doc["results"]}
    ran_on = doc.get("device") or ("cpu" if device == "auto" else device)
    out = []
    for a in artifacts:
        res = by_id.get(a.sha256) or {"status": "crash", "detail": "the runner gave no result for it"}
        status = res.get("status") if res.get("status") in STATUSES else "crash"
        out.append(Outcome(a, target, status, _clean(res.get("detail", "")), res.get("seconds"), runtime=runtime,
                           device=ran_on, message=_clean_message(res.get("message", "")), on=on,
                           where=where or {}))
    return out


def _parse(stdout: str, stderr: str, code: int | None, where: str, *, sandboxed: bool = False) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("schema") == SCHEMA and "error" in doc:
            error = str(doc["error"])
            raise ProbeError(f"the compat runner in {where} refused: {_clean(error)}",
                             hint=_refusal_hint(error, sandboxed))
        if isinstance(doc, dict) and doc.get("schema") == SCHEMA and "results" in doc:
            return doc
    tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output"
    raise ProbeError(f"the compat runner in {where} gave no result (exit {code}): {tail}")


def _refusal_hint(error: str, sandboxed: bool) -> str | None:
    if "--device" in error:
        return "use --device cpu, or a target that sees a GPU"
    if "cannot import torch" in error and sandboxed and "Permission denied" in error:
        return ("the sandbox runs it as uid 65534: make the environment readable by others (chmod -R o+rX), "
                "or pass --trust for artifacts you trust")
    if "cannot import torch" in error:
        return "give an interpreter that has torch installed"
    return None


def compute_reference(target: Target, folder: Path, kind: str, file: str, *, name: str, engine=None,
                      timeout: float = 60.0, trust: bool = False) -> Path:
    """Run the artifact in ``folder`` on its sample inputs under ``target``; write folder/outputs.pt.

    ``timeout`` is the same per-artifact limit as compat's, plus 30 s for the start; a local
    interpreter runs it sandboxed unless ``trust``, as ``run`` does."""
    check_timeout(timeout)
    box = choose(target.ref, trust=trust) if target.kind == "python" else None
    limit = timeout + 30  # the interpreter (or container) start and the torch import
    with tempfile.TemporaryDirectory(prefix="envctl-ref-") as tmp:
        out = Path(tmp) / "outputs.pt"
        if target.kind == "image":
            Path(tmp).chmod(0o777)
            result = engine.run(
                target.ref, ["python", "/opt/envctl-probe/compat_runner.py", "--reference", kind,
                             f"/artifact/{file}", "/artifact/inputs.pt", "/out/outputs.pt"],
                mounts=[(str(RUNNER.parent), "/opt/envctl-probe", True), (str(folder), "/artifact", True),
                        (tmp, "/out", False)], network="none", timeout=limit, sandbox=True,
                exec_tmp=kind == "aoti", **LIMITS)
            stdout, code, timed_out = result.stdout, result.exit_code, result.timed_out
        else:
            stage = Path(tmp)
            (stage / "artifact").mkdir(mode=0o755)
            for given in (file, "inputs.pt"):
                shutil.copyfile(folder / given, stage / "artifact" / given)
                (stage / "artifact" / given).chmod(0o644)
            out = stage / "home" / "outputs.pt"  # the one folder the sandbox may write
            try:
                stdout, _, code = _run_local(box, ["--reference", kind, str(stage / "artifact" / file),
                                                   str(stage / "artifact" / "inputs.pt"), str(out)],
                                             stage=stage, timeout=limit, gpu=False)
                timed_out = False
            except subprocess.TimeoutExpired:
                stdout, code, timed_out = "", None, True
            except OSError as exc:
                stdout, code, timed_out = f"cannot run {target.ref}: {exc.strerror}", None, False
        # What the run left is read as a regular file, never through a link it may have put there.
        data = None if timed_out or code != 0 else read_back(out)
        if data is None:
            detail = (f"no answer within {limit:.0f}s" if timed_out else
                      "it left no regular file of outputs" if code == 0 else _reference_failure(stdout, code))
            raise EnvctlError(f"cannot compute reference outputs of {name} under {target.label}: {detail}; "
                              f"nothing was registered",
                              hint="give them with --outputs FILE, or pick an environment where it runs")
        (folder / "outputs.pt").write_bytes(data)
    return folder / "outputs.pt"


def _reference_failure(stdout: str, code: int | None) -> str:
    """What the runner said went wrong: its document's status and detail, not the raw JSON;
    the last line as printed when the runner died before writing one."""
    lines = stdout.strip().splitlines()
    if not lines:
        return f"exit {code}"
    try:
        doc = json.loads(lines[-1])
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("detail"):
        return _clean(f"{doc.get('status', 'error')}: {doc['detail']}")
    return _clean(lines[-1])
