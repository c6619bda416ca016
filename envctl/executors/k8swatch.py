"""How a Job is doing, judged purely from the official client's model objects (the Job, its pod,
the events about them), and what the executor makes of it: a result read from the pod's log, or
one line naming the Job and saying why it ended without one.

Each case has a test built from the client's own models (tests/executors/test_kubernetes.py);
``kubeapi`` only fetches the objects this module reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from envctl.errors import FleetError
from envctl.executors.base import Task, TaskResult
from envctl.executors.k8sjobs import DEFAULT_WAIT_S, DRIVER_MAJOR, GPU_PRODUCT

DRIVER_MINOR = "nvidia.com/cuda.driver.minor"
# A container waiting for one of these will not start by waiting longer: the kubelet backs off
# pulling an image it could not pull, and a container it could not configure stays unconfigured.
# (ErrImagePull is not among them: the first failed pull may be the registry's hiccup.)
HOPELESS = {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


@dataclass
class Look:
    """What the API said about one Job at one moment."""

    job: Any  # V1Job
    pods: list[Any] = field(default_factory=list)  # V1Pod, of this Job
    events: list[Any] = field(default_factory=list)  # CoreV1Event, about the Job or its pods

    @property
    def name(self) -> str:
        return self.job.metadata.name

    @property
    def pod(self) -> Any | None:
        """The Job's newest pod (backoffLimit 0 makes one, but a deleted node's pod is replaced)."""
        return max(self.pods, key=lambda p: p.metadata.creation_timestamp or _NEVER, default=None)


@dataclass(frozen=True)
class Verdict:
    """Where a Job stands: still going (``done`` false, ``state`` for progress), ended with a log to
    read, or ended with ``error``, one line naming the Job; ``stuck``: the Job still holds its
    place on the cluster (Pending, or backing off a pull) and is to be deleted."""

    state: str
    done: bool = False
    stuck: bool = False
    has_log: bool = False
    error: str | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    seconds: float = 0.0

    def result(self, task: Task, log: str, where: dict[str, Any]) -> TaskResult:
        """The task's result: the log split into the probe's JSON line and the rest."""
        stdout, stderr = split_log(log)
        return TaskResult(task, self.exit_code, stdout, stderr, timed_out=self.timed_out,
                          oom_killed=self.oom_killed, seconds=self.seconds, where=where, error=self.error)


def judge(look: Look, *, wait_s: float | None, now: datetime) -> Verdict:
    """The verdict on ``look`` at ``now``; a pod Pending for longer than ``wait_s`` since the Job
    was created ends it, quoting the scheduler's event."""
    name, job, pod = look.name, look.job, look.pod
    failed = _condition(job, "Failed")
    if failed is not None and failed.reason == "DeadlineExceeded":
        return Verdict("DeadlineExceeded", done=True, timed_out=True,
                       error=f"job {name} ran past its deadline of {job.spec.active_deadline_seconds}s "
                             f"(DeadlineExceeded): {failed.message or 'the cluster stopped it'}")
    status = _container_status(pod)
    state = status.state if status is not None else None
    if state is not None and state.terminated is not None:
        ended = state.terminated
        seconds = ((ended.finished_at - ended.started_at).total_seconds()
                   if ended.finished_at and ended.started_at else 0.0)
        where = f" on node {pod.spec.node_name}" if pod.spec and pod.spec.node_name else ""
        if ended.reason == "OOMKilled":
            limit = ((_limits(pod) or {}).get("memory")) or "no limit"
            return Verdict("OOMKilled", done=True, has_log=True, exit_code=ended.exit_code, oom_killed=True,
                           seconds=seconds,
                           error=f"job {name}: the container was OOMKilled{where} (memory limit: {limit})")
        return Verdict(f"{ended.reason or 'Terminated'} (exit {ended.exit_code}){where}", done=True, has_log=True,
                       exit_code=ended.exit_code, seconds=seconds)
    if state is not None and state.waiting is not None and state.waiting.reason in HOPELESS:
        waiting = state.waiting
        return Verdict(waiting.reason, done=True, stuck=True,
                       error=f"job {name}: {waiting.reason}: {waiting.message or 'no message'}")
    if pod is not None and pod.status is not None and pod.status.phase == "Failed":
        why = pod.status.reason or "Failed"
        return Verdict(why, done=True, error=f"job {name}: pod {pod.metadata.name} {why}: "
                                             f"{pod.status.message or 'no message'}")
    if failed is not None:
        return Verdict(failed.reason or "Failed", done=True,
                       error=f"job {name} failed ({failed.reason}): {failed.message or 'no message'}")
    node = pod.spec.node_name if pod is not None and pod.spec is not None else None
    if pod is not None and pod.status is not None and pod.status.phase == "Running":
        return Verdict(f"Running on node {node}")
    created = job.metadata.creation_timestamp
    wait = wait_s if wait_s is not None else DEFAULT_WAIT_S
    waited = (now - created).total_seconds() if created is not None else 0.0
    if node or waited <= wait:  # once on a node (pulling the image), the Job's own deadline rules
        return Verdict(_pending_state(look))
    event = _latest(look.events, reason="FailedScheduling") or _latest(look.events, reason="FailedCreate")
    why = f"{event.reason}: {event.message}" if event is not None else _pending_state(look)
    return Verdict("Pending", done=True, stuck=True, error=f"job {name} still Pending after {wait:.0f}s: {why}")


def split_log(log: str) -> tuple[str, str]:
    """The probe's JSON document and everything else: a pod's log holds stdout and stderr together,
    so the document is the last line that is a JSON object; the other lines count as stderr."""
    lines = log.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if line.startswith("{"):
            try:
                if isinstance(json.loads(line), dict):
                    return line + "\n", "\n".join(lines[:i] + lines[i + 1:])
            except json.JSONDecodeError:
                continue
    return "", log


def where_from(look: Look, node: Any | None, *, context: str | None, namespace: str) -> dict[str, Any]:
    """Where the Job ran, for the records: the node, its GPU product and CUDA driver from GPU feature
    discovery's labels (None when the node could not be read: reading nodes needs cluster rights)."""
    pod = look.pod
    labels = (node.metadata.labels or {}) if node is not None and node.metadata is not None else {}
    major, minor = labels.get(DRIVER_MAJOR), labels.get(DRIVER_MINOR)
    info = node.status.node_info if node is not None and node.status is not None else None
    return {"executor": "kubernetes", "context": context, "namespace": namespace, "job": look.name,
            "pod": pod.metadata.name if pod is not None else None,
            "node": pod.spec.node_name if pod is not None and pod.spec is not None else None,
            "gpu": labels.get(GPU_PRODUCT), "driver": f"{major}.{minor}" if major and minor else major,
            "runtime": info.container_runtime_version if info is not None else None}


def api_error(exc: Any, *, doing: str, namespace: str) -> FleetError:
    """An ApiException as one line saying what was being done and what the API server answered."""
    message = exc.reason or f"HTTP {exc.status}"
    try:
        message = json.loads(exc.body or "{}").get("message") or message
    except (ValueError, AttributeError):
        pass
    if exc.status == 403:
        return FleetError(f"{doing}: forbidden in namespace {namespace}: {message}",
                          hint=f"check your rights (kubectl auth can-i create jobs -n {namespace}) "
                               "or pick another namespace")
    if exc.status == 401:
        return FleetError(f"{doing}: the API server refused the credentials: {message}",
                          hint="log in again (your kubeconfig's token or certificate expired?)")
    if exc.status == 404:
        return FleetError(f"{doing}: not found: {message}",
                          hint=f"does namespace {namespace} exist? (kubectl get namespace {namespace})")
    return FleetError(f"{doing}: the API server answered {exc.status} {exc.reason}: {message}")


def _limits(pod: Any) -> dict[str, str] | None:
    """The pod's container limits (what an OOMKilled line quotes)."""
    if pod is None or pod.spec is None or not pod.spec.containers:
        return None
    resources = pod.spec.containers[0].resources
    return resources.limits if resources is not None else None


def _condition(job: Any, kind: str) -> Any | None:
    conditions = (job.status.conditions if job.status is not None else None) or []
    return next((c for c in conditions if c.type == kind and c.status == "True"), None)


def _container_status(pod: Any | None) -> Any | None:
    if pod is None or pod.status is None or not pod.status.container_statuses:
        return None
    return pod.status.container_statuses[0]


def _latest(events: list[Any], *, reason: str) -> Any | None:
    def when(event: Any) -> datetime:
        return event.last_timestamp or event.event_time or event.metadata.creation_timestamp or _NEVER

    matching = [e for e in events if e.reason == reason]
    return max(matching, key=when) if matching else None


def _pending_state(look: Look) -> str:
    status = _container_status(look.pod)
    if status is not None and status.state is not None and status.state.waiting is not None:
        return f"Pending ({status.state.waiting.reason})"
    return "Pending" if look.pod is not None else "Pending (no pod yet)"
