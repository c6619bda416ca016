"""The one module that talks to a Kubernetes API server (through the official client, with the
user's kubeconfig and context): create a submission's ConfigMap and Jobs, fetch what ``k8swatch``
judges, read a pod's log and its node's labels, delete Jobs on cancel.

Nothing here ran against a real cluster on envctl's build machines (none can run there): every
decision lives in the pure modules beside this one, so this one stays a thin list of API calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from envctl.errors import FleetError
from envctl.executors.k8sjobs import Manifests
from envctl.executors.k8swatch import Look, api_error, where_from

T = TypeVar("T")


class KubeApi:
    """The API calls of one namespace of one cluster."""

    def __init__(self, api_client: Any, *, context: str | None, namespace: str) -> None:
        from kubernetes import client

        self.context = context
        self.namespace = namespace
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    @classmethod
    def connect(cls, *, context: str | None, namespace: str) -> KubeApi:
        """The kubeconfig's ``context`` (its current one when None); inside a pod with no
        kubeconfig, the pod's service account."""
        from kubernetes import client, config

        configuration = client.Configuration()
        # KUBECONFIG read now, not when the client was imported (its default is fixed at import)
        files = os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            config.load_kube_config(config_file=files, context=context, client_configuration=configuration)
        except (config.ConfigException, OSError) as exc:
            if context is not None or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                which = f" context {context}" if context else ""
                raise FleetError(f"cannot load the kubeconfig{which}: {exc}", hint="check KUBECONFIG (or "
                                 "~/.kube/config) and `kubectl config get-contexts`") from None
            config.load_incluster_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration), context=context, namespace=namespace)

    def create(self, manifests: Manifests) -> None:
        """The ConfigMap, then the Jobs; on any failure (or an interrupt) what was created is
        deleted before the error goes on. The ConfigMap is then owned by the Jobs, so the cluster
        removes it with the last of them."""
        from kubernetes import client

        ns = self.namespace
        cm_name = manifests.config_map.metadata.name
        self._call(f"create configmap {cm_name}", self.core.create_namespaced_config_map, ns, manifests.config_map)
        created = []
        try:
            for job in manifests.jobs:
                made = self._call(f"create job {job.metadata.name}", self.batch.create_namespaced_job, ns, job)
                created.append(made)
            owners = [client.V1OwnerReference(api_version="batch/v1", kind="Job", name=j.metadata.name,
                                              uid=j.metadata.uid) for j in created]
            self._call(f"own configmap {cm_name}", self.core.patch_namespaced_config_map, cm_name, ns,
                       {"metadata": {"ownerReferences": [self.core.api_client.sanitize_for_serialization(o)
                                                         for o in owners]}})
        except BaseException:  # nothing envctl made may outlive a failed submit: no one would stop it
            try:
                self.delete([job.metadata.name for job in created], config_map=cm_name)
            except FleetError:
                pass  # the failure that brought us here is the one to report
            raise

    def look(self, job_name: str) -> Look:
        """The Job, its pods and the events about either."""
        ns = self.namespace
        job = self._call(f"read job {job_name}", self.batch.read_namespaced_job, job_name, ns)
        pods = self._call(f"list the pods of job {job_name}", self.core.list_namespaced_pod, ns,
                          label_selector=f"job-name={job_name}").items
        events = []
        for name in [job_name, *(p.metadata.name for p in pods)]:
            events += self._call(f"list the events of {name}", self.core.list_namespaced_event, ns,
                                 field_selector=f"involvedObject.name={name}").items
        return Look(job, pods, events)

    def log(self, pod: Any) -> str:
        """The pod's log as its container wrote it, read raw: clients that pyproject allows parse a
        log that is one JSON document and hand back its Python repr (kubernetes-client/python#1354;
        recent ones do so only when the answer has no content type)."""
        name = pod.metadata.name
        answer = self._call(f"read the log of pod {name}", self.core.read_namespaced_pod_log, name,
                            self.namespace, _preload_content=False)
        return answer.data.decode("utf-8", errors="replace")

    def where(self, look: Look) -> dict[str, Any]:
        """Where the Job ran; the node's GPU labels only where this user may read nodes."""
        from kubernetes.client.rest import ApiException

        node = None
        pod = look.pod
        if pod is not None and pod.spec is not None and pod.spec.node_name:
            try:
                node = self.core.read_node(pod.spec.node_name)
            except ApiException:
                node = None  # reading nodes needs cluster-wide rights; the probe reports the GPU itself
        return where_from(look, node, context=self.context, namespace=self.namespace)

    def delete(self, job_names: list[str], *, config_map: str | None = None) -> list[str]:
        """Delete the Jobs (propagation Foreground: their pods go before them) and the ConfigMap;
        the Jobs that were there to delete."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        deleted, failed = [], []
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        calls = [(f"delete job {n}", n, lambda n=n: self.batch.delete_namespaced_job(n, self.namespace, body=body))
                 for n in job_names]
        if config_map is not None:
            calls.append((f"delete configmap {config_map}", None,
                          lambda: self.core.delete_namespaced_config_map(config_map, self.namespace)))
        for doing, job, call in calls:  # every one tried: one refused delete must not leave the rest running
            try:
                call()
                if job is not None:
                    deleted.append(job)
            except ApiException as exc:
                if exc.status != 404:  # already gone: nothing to stop
                    failed.append(api_error(exc, doing=doing, namespace=self.namespace).message)
            except Exception as exc:  # noqa: BLE001 - the connection itself (urllib3): said, not raised midway
                failed.append(f"{doing}: {exc}")
        if failed:
            raise FleetError(failed[0] + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""),
                             hint=f"delete them by hand: kubectl delete jobs -n {self.namespace} -l "
                                  f"app.kubernetes.io/managed-by=envctl")
        return deleted

    def _call(self, doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` with the API's errors as one line naming what was being done."""
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise api_error(exc, doing=doing, namespace=self.namespace) from None
        except HTTPError as exc:
            raise FleetError(f"{doing}: cannot reach the API server of context {self.context or '(current)'}: {exc}",
                             hint="check the cluster's address and your network (kubectl cluster-info)") from None
