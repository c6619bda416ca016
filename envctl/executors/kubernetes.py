"""A Kubernetes cluster as an executor: a Job per task on a GPU node pool (NVIDIA's device plugin
and GPU feature discovery), the probe files in a ConfigMap, the result read from the pod's log.

The manifests are built purely (``k8sjobs``), the pods are judged purely (``k8swatch``); only
``kubeapi`` talks to the API server, so what cannot be tested without a cluster stays small.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from envctl.executors.base import Submission, Task, TaskResult, require_images
from envctl.executors.k8sjobs import config_map_name


POLL_S = 2.0  # between looks at the Jobs' pods: a probe runs for minutes, the API is shared


@dataclass(frozen=True)
class KubernetesOptions:
    """Where on a cluster: the kubeconfig context and namespace, the GPU pool (GPU feature
    discovery's product label, and the CUDA driver's major version when the lock needs a newer
    one than some nodes have) and how many GPUs; how long a pod may stay Pending."""

    context: str | None = None  # None: the kubeconfig's current context
    namespace: str = "default"
    gpu_product: str | None = None
    gpus: int = 0
    wait_s: float | None = None  # None: k8sjobs.DEFAULT_WAIT_S
    driver_major: int | None = None


class KubernetesExecutor:
    """Runs tasks as Jobs in one namespace of one cluster."""

    kind = "kubernetes"

    def __init__(self, options: KubernetesOptions, *, api=None) -> None:
        self.options = options
        self._api = api  # a kubeapi.KubeApi, connected on first use: planning needs no cluster
        self._ended: set[str] = set()  # Jobs already collected: kept for `kubectl logs` until their TTL

    @property
    def api(self):
        if self._api is None:
            from envctl.executors.kubeapi import KubeApi

            self._api = KubeApi.connect(context=self.options.context, namespace=self.options.namespace)
        return self._api

    def describe(self) -> str:
        o = self.options
        pool = f", {o.gpus} x {o.gpu_product or 'any GPU'}" if o.gpus else ""
        if o.gpu_product and not o.gpus:
            pool = f", on {o.gpu_product} nodes"
        return f"Kubernetes, context {o.context or '(current)'}, namespace {o.namespace}{pool}"

    def plan(self, tasks: Sequence[Task]) -> str:
        """The ConfigMap and Jobs as YAML for ``kubectl apply -f -``."""
        from envctl.executors.k8sjobs import content_id, submission_manifests, to_yaml

        require_images(tasks, where="a Kubernetes Job")
        return to_yaml(submission_manifests(tasks, self.options, content_id(tasks, self.options)))

    def submit(self, tasks: Sequence[Task]) -> Submission:
        from envctl.executors.k8sjobs import content_id, submission_manifests

        require_images(tasks, where="a Kubernetes Job")
        # a fresh id on every submit: the cluster keeps the last run's Jobs (and names) an hour
        sub_id = content_id(tasks, self.options)[:4] + secrets.token_hex(2)
        manifests = submission_manifests(tasks, self.options, sub_id)
        self.api.create(manifests)
        return Submission(self.kind, sub_id, list(tasks),
                          handles={t.name: job.metadata.name for t, job in zip(tasks, manifests.jobs)})

    def wait(self, submission: Submission, *, timeout: float | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> list[TaskResult]:
        from envctl.executors.k8swatch import judge

        wait_s = self.options.wait_s
        started = time.monotonic()
        results: dict[str, TaskResult] = {}
        said: dict[str, str] = {}
        while len(results) < len(submission.tasks):
            for task in submission.tasks:
                if task.name in results:
                    continue
                name = submission.handles[task.name]
                look = self.api.look(name)
                verdict = judge(look, wait_s=wait_s, now=datetime.now(timezone.utc))
                if verdict.state != said.get(task.name):
                    said[task.name] = verdict.state
                    progress(f"job {name}: {verdict.state}")
                if verdict.done:
                    if verdict.stuck:  # else it would wait for a GPU, or back off, with nobody to read it
                        self.api.delete([name])
                    log = self.api.log(look.pod) if verdict.has_log else ""
                    results[task.name] = verdict.result(task, log, self.api.where(look))
                    self._ended.add(name)
            if len(results) < len(submission.tasks):
                if timeout is not None and time.monotonic() - started > timeout:
                    from envctl.errors import FleetError

                    raise FleetError(f"{len(submission.tasks) - len(results)} Job(s) of submission "
                                     f"{submission.id} still running after {timeout:.0f}s")
                time.sleep(POLL_S)
        return [results[t.name] for t in submission.tasks]

    def cancel(self, submission: Submission) -> list[str]:
        """Delete the submission's Jobs that have not ended (propagation Foreground: their pods go
        first) and its ConfigMap; the tasks whose Jobs were still there."""
        names = [submission.handles[t.name] for t in submission.tasks
                 if t.name in submission.handles and submission.handles[t.name] not in self._ended]
        deleted = set(self.api.delete(names, config_map=config_map_name(submission.id)))
        return [t.name for t in submission.tasks if submission.handles.get(t.name) in deleted]
