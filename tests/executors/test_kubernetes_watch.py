"""Following, collecting and cancelling Kubernetes Jobs (issue #25), judged on the official
client's own model objects (V1Job, V1Pod, V1ContainerStatus, CoreV1Event, V1Node), made as the
client makes them from an API server's JSON. No cluster can run here: where the executor's loop
is tested whole, the client's two API objects are replaced by recorders that answer with models."""

from __future__ import annotations

import json
import signal
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes.client import ApiClient, Configuration, CoreV1EventList, V1PodList
from kubernetes.client.rest import ApiException
from urllib3.response import HTTPResponse

from envctl.errors import FleetError
from envctl.executors import Task, run_tasks
from envctl.executors import kubernetes as kubernetes_executor
from envctl.executors.k8swatch import Look, api_error, judge, split_log, where_from
from envctl.executors.kubeapi import KubeApi
from envctl.executors.kubernetes import KubernetesExecutor, KubernetesOptions
from envctl.probe import SCHEMA, report_from

IMAGE = "registry.example:5000/envctl/pytorch-2.13-cpu@sha256:" + "ab" * 32
JOB = "envctl-0123abcd-probe"
POD = JOB + "-x7k2p"
NOW = datetime(2026, 12, 6, 21, 0, tzinfo=timezone.utc)
DOC = {"schema": SCHEMA, "ok": True, "checks": [{"name": "torch import", "status": "pass", "message": "2.13.0"}],
       "benchmarks": [], "env": {"gpus": [{"name": "NVIDIA H100 80GB HBM3"}], "driver_version": "580.95.05"}}


def model(data: dict, kind: str):
    return ApiClient()._ApiClient__deserialize(data, kind)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(*, age: float = 30, failed: tuple[str, str] | None = None, now: datetime = NOW, name: str = JOB):
    conditions = [{"type": "Failed", "status": "True", "reason": failed[0], "message": failed[1]}] if failed else []
    created = (now - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return model({"metadata": {"name": name, "namespace": "ml-ci", "creationTimestamp": created},
                  "spec": {"activeDeadlineSeconds": 420, "backoffLimit": 0,
                           "template": {"spec": {"containers": [{"name": "probe", "image": IMAGE}]}}},
                  "status": {"conditions": conditions}}, "V1Job")


def pod(phase: str, state: dict | None = None, *, node: str | None = "gpu-node-3", reason: str | None = None,
        message: str | None = None, limits: dict | None = None):
    statuses = [{"name": "probe", "image": IMAGE, "imageID": "", "ready": False, "restartCount": 0,
                 "state": state}] if state else None
    return model({"metadata": {"name": POD, "creationTimestamp": stamp(25)},
                  "spec": {"nodeName": node, "containers": [{"name": "probe", "image": IMAGE,
                                                             "resources": {"limits": limits or {}}}]},
                  "status": {"phase": phase, "reason": reason, "message": message,
                             "containerStatuses": statuses}}, "V1Pod")


def event(reason: str, message: str, *, about: str = POD, seconds_ago: float = 5):
    return model({"metadata": {"name": f"{about}.{reason}", "creationTimestamp": stamp(seconds_ago)},
                  "involvedObject": {"kind": "Pod", "name": about, "namespace": "ml-ci"},
                  "reason": reason, "message": message, "type": "Warning",
                  "lastTimestamp": stamp(seconds_ago)}, "CoreV1Event")


def terminated(reason: str, code: int, seconds: float = 42) -> dict:
    return {"terminated": {"reason": reason, "exitCode": code, "startedAt": stamp(seconds + 1),
                           "finishedAt": stamp(1)}}


INSUFFICIENT = ("0/5 nodes are available: 5 Insufficient nvidia.com/gpu. preemption: 0/5 nodes are "
                "available: 5 No preemption victims found for incoming pod.")


# -- the verdicts ------------------------------------------------------------------------------

def test_pending_past_the_wait_ends_quoting_the_schedulers_event():
    events = [event("FailedScheduling", "0/5 nodes are available: 2 node(s) had untolerated taint.", seconds_ago=90),
              event("FailedScheduling", INSUFFICIENT, seconds_ago=10)]
    young = judge(Look(job(age=60), [pod("Pending", node=None)], events), wait_s=120, now=NOW)
    assert not young.done and young.state == "Pending"
    old = judge(Look(job(age=200), [pod("Pending", node=None)], events), wait_s=120, now=NOW)
    assert old.done and old.stuck
    assert old.error == f"job {JOB} still Pending after 120s: FailedScheduling: {INSUFFICIENT}"
    pulling = pod("Pending", {"waiting": {"reason": "ContainerCreating"}}, node="gpu-node-3")
    on_a_node = judge(Look(job(age=200), [pulling], events), wait_s=120, now=NOW)
    assert not on_a_node.done and on_a_node.state == "Pending (ContainerCreating)"  # the Job's deadline rules


def test_a_job_that_made_no_pod_ends_quoting_its_own_event():
    quota = 'pods "envctl-0123abcd-probe-x7k2p" is forbidden: exceeded quota: gpu-quota'
    verdict = judge(Look(job(age=700), [], [event("FailedCreate", quota, about=JOB)]), wait_s=None, now=NOW)
    assert verdict.error == f"job {JOB} still Pending after 600s: FailedCreate: {quota}"


def test_image_pull_back_off_ends_at_once_naming_the_job():
    message = f'Back-off pulling image "{IMAGE}": not found'
    first = judge(Look(job(), [pod("Pending", {"waiting": {"reason": "ErrImagePull", "message": "timeout"}})]),
                  wait_s=120, now=NOW)
    assert not first.done and first.state == "Pending (ErrImagePull)"  # the registry's hiccup gets a retry
    verdict = judge(Look(job(), [pod("Pending", {"waiting": {"reason": "ImagePullBackOff", "message": message}})]),
                    wait_s=120, now=NOW)
    assert verdict.done and not verdict.has_log
    assert verdict.error == f"job {JOB}: ImagePullBackOff: {message}"


def test_oom_killed_is_one_line_with_the_limit_and_keeps_the_log():
    verdict = judge(Look(job(), [pod("Failed", terminated("OOMKilled", 137), limits={"memory": "2Gi"})]),
                    wait_s=120, now=NOW)
    assert verdict.done and verdict.oom_killed and verdict.exit_code == 137 and verdict.has_log
    assert verdict.error == f"job {JOB}: the container was OOMKilled on node gpu-node-3 (memory limit: 2Gi)"


def test_deadline_exceeded_is_a_timeout_naming_the_job():
    verdict = judge(Look(job(failed=("DeadlineExceeded", "Job was active longer than specified deadline")),
                         [pod("Failed", terminated("Error", 143))]), wait_s=120, now=NOW)
    assert verdict.done and verdict.timed_out
    assert verdict.error == (f"job {JOB} ran past its deadline of 420s (DeadlineExceeded): "
                             "Job was active longer than specified deadline")


def test_an_evicted_pod_is_one_line():
    verdict = judge(Look(job(), [pod("Failed", reason="Evicted", message="The node was low on resource: memory.")]),
                    wait_s=120, now=NOW)
    assert verdict.error == f"job {JOB}: pod {POD} Evicted: The node was low on resource: memory."


def test_running_is_progress_not_an_end():
    verdict = judge(Look(job(age=900), [pod("Running", {"running": {"startedAt": stamp(5)}})]), wait_s=120, now=NOW)
    assert not verdict.done and verdict.state == "Running on node gpu-node-3"


def test_succeeded_with_a_log_is_the_probes_report():
    log = "\n".join(["/usr/lib/python3/warnings.py:1: UserWarning: TF32 is on", json.dumps(DOC),
                     "[W1206 21:00:01] a late warning from a torch thread"])
    verdict = judge(Look(job(), [pod("Succeeded", terminated("Completed", 0))]), wait_s=120, now=NOW)
    assert verdict.done and verdict.has_log and verdict.error is None
    task = Task(name="probe", image=IMAGE, command=("python",))
    result = verdict.result(task, log, {"executor": "kubernetes", "node": "gpu-node-3"})
    assert result.exit_code == 0 and result.seconds == 42 and result.where["node"] == "gpu-node-3"
    assert json.loads(result.stdout) == DOC
    assert result.stderr.splitlines() == [log.splitlines()[0], log.splitlines()[2]]
    report = report_from(result, IMAGE)  # what the verify workflow makes of it
    assert report.ok and report.gpu == "NVIDIA H100 80GB HBM3"


def test_a_probe_that_failed_a_check_still_gives_its_report():
    doc = {**DOC, "ok": False, "checks": [{"name": "cuda", "status": "fail", "message": "no GPU"}]}
    verdict = judge(Look(job(failed=("BackoffLimitExceeded", "Job has reached the specified backoff limit")),
                         [pod("Failed", terminated("Error", 1))]), wait_s=120, now=NOW)
    assert verdict.done and verdict.has_log and verdict.error is None and verdict.exit_code == 1
    report = report_from(verdict.result(Task("probe", IMAGE, ()), json.dumps(doc), {}), IMAGE)
    assert not report.ok and report.failed[0]["name"] == "cuda"


def test_a_log_without_a_document_is_all_stderr():
    assert split_log("Traceback (most recent call last):\n{not json") == \
        ("", "Traceback (most recent call last):\n{not json")


def test_where_comes_from_the_nodes_gpu_feature_discovery_labels():
    node = model({"metadata": {"name": "gpu-node-3", "labels": {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/cuda.driver.major": "580",
        "nvidia.com/cuda.driver.minor": "95"}}, "status": {"nodeInfo": {
            "architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7.27",
            "kernelVersion": "6.8", "kubeProxyVersion": "", "kubeletVersion": "v1.33.1", "machineID": "m",
            "operatingSystem": "linux", "osImage": "Ubuntu 24.04", "systemUUID": "u"}}}, "V1Node")
    look = Look(job(), [pod("Succeeded", terminated("Completed", 0))])
    assert where_from(look, node, context="prod", namespace="ml-ci") == {
        "executor": "kubernetes", "context": "prod", "namespace": "ml-ci", "job": JOB, "pod": POD,
        "node": "gpu-node-3", "gpu": "NVIDIA-H100-80GB-HBM3", "driver": "580.95", "runtime": "containerd://1.7.27"}
    unread = where_from(look, None, context=None, namespace="ml-ci")  # no right to read nodes
    assert unread["node"] == "gpu-node-3" and unread["gpu"] is None and unread["driver"] is None


def forbidden() -> ApiException:
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403, "message":
                           'jobs.batch is forbidden: User "ci" cannot create resource "jobs" in API group "batch" '
                           'in the namespace "ml-ci"'})
    return exc


def test_a_forbidden_namespace_is_one_line_with_what_to_do():
    error = api_error(forbidden(), doing=f"create job {JOB}", namespace="ml-ci")
    assert str(error) == (f'create job {JOB}: forbidden in namespace ml-ci: jobs.batch is forbidden: User "ci" '
                          'cannot create resource "jobs" in API group "batch" in the namespace "ml-ci"')
    assert error.hint.startswith("check your rights (kubectl auth can-i create jobs -n ml-ci)")
    assert isinstance(error, FleetError) and error.exit_code == 1


# -- the executor's loop over recorded API calls --------------------------------------------------

class Recorder:
    """Stands in for the client's CoreV1Api and BatchV1Api: records each call, answers with the
    client's models (``answers``: method name -> a list of answers, the last one repeated)."""

    def __init__(self, answers: dict):
        self.calls: list[tuple] = []
        self.answers = answers
        self.api_client = ApiClient()

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            self.calls.append((method, args, kwargs))
            queue = self.answers.get(method, [None])
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(answer, BaseException) or (isinstance(answer, type) and issubclass(answer, BaseException)):
                raise answer
            return answer(*args) if callable(answer) else answer
        return call


def recorded_api(core: dict, batch: dict) -> KubeApi:
    api = KubeApi(ApiClient(), context="prod", namespace="ml-ci")
    api.core, api.batch = Recorder(core), Recorder(batch)
    return api


def created(_ns, body):
    body.metadata.uid = "6f1c0e9e-1b7a-4c4e-9d55-0a4b0c3a8f21"
    return body


def pods_of(*pods):
    return V1PodList(items=list(pods))


def raw(text: str) -> HTTPResponse:
    return HTTPResponse(body=text.encode(), status=200, preload_content=True)


def no_events(*_args):
    return CoreV1EventList(items=[])


def test_submit_wait_collect_over_the_api(tmp_path, monkeypatch):
    monkeypatch.setattr(kubernetes_executor, "POLL_S", 0)
    running = pod("Running", {"running": {"startedAt": stamp(5)}})
    done = pod("Succeeded", terminated("Completed", 0))
    api = recorded_api(core={"list_namespaced_pod": [pods_of(), pods_of(running), pods_of(done)],
                             "list_namespaced_event": [no_events], "read_namespaced_pod_log": [raw(json.dumps(DOC))],
                             "read_node": [ApiException(status=403, reason="Forbidden")]},
                       batch={"create_namespaced_job": [created],
                              "read_namespaced_job": [job(now=datetime.now(timezone.utc))]})
    seen = []
    task = Task(name="probe", image=IMAGE, command=("python", "-c", "print(1)"), gpus="1")
    [result] = run_tasks(KubernetesExecutor(KubernetesOptions(namespace="ml-ci", gpus=1), api=api), [task],
                         progress=seen.append)
    assert json.loads(result.stdout) == DOC and result.exit_code == 0
    assert result.where["node"] == "gpu-node-3" and result.where["executor"] == "kubernetes"
    made = [c for c in api.core.calls if c[0].startswith(("create", "patch"))]
    assert [c[0] for c in made] == ["create_namespaced_config_map", "patch_namespaced_config_map"]
    assert [c[0] for c in api.batch.calls if c[0].startswith("create")] == ["create_namespaced_job"]
    owners = made[1][1][2]["metadata"]["ownerReferences"]
    assert owners[0]["kind"] == "Job" and owners[0]["uid"].startswith("6f1c0e9e")
    assert [s.split(": ", 1)[1] for s in seen] == ["Pending (no pod yet)", "Running on node gpu-node-3",
                                                    "Completed (exit 0) on node gpu-node-3"]
    [log_call] = [c for c in api.core.calls if c[0] == "read_namespaced_pod_log"]
    assert log_call[2] == {"_preload_content": False}  # the raw log: see test_a_json_log_stays_json


def test_a_job_pending_past_the_wait_is_deleted_and_named(monkeypatch):
    monkeypatch.setattr(kubernetes_executor, "POLL_S", 0)
    api = recorded_api(core={"list_namespaced_pod": [pods_of(pod("Pending", node=None))],
                             "list_namespaced_event": [lambda *_a: CoreV1EventList(items=[
                                 event("FailedScheduling", INSUFFICIENT)])]},
                       batch={"create_namespaced_job": [created],
                              "read_namespaced_job": [lambda name, _ns: job(age=200, name=name,
                                                                            now=datetime.now(timezone.utc))]})
    task = Task(name="probe", image=IMAGE, command=("true",), gpus="1")
    executor = KubernetesExecutor(KubernetesOptions(namespace="ml-ci", gpus=1, wait_s=120), api=api)
    [result] = run_tasks(executor, [task])
    [delete] = [c for c in api.batch.calls if c[0] == "delete_namespaced_job"]
    name = delete[1][0]
    assert result.error == f"job {name} still Pending after 120s: FailedScheduling: {INSUFFICIENT}"
    assert delete[1] == (name, "ml-ci") and delete[2]["body"].propagation_policy == "Foreground"
    assert [c[0] for c in api.core.calls if c[0].startswith("delete")] == []  # the ConfigMap is the others' too


def test_ctrl_c_deletes_the_jobs_in_the_foreground_and_says_so(monkeypatch):
    def interrupted(*_args):
        signal.raise_signal(signal.SIGINT)  # a real Ctrl-C while the executor follows the Job
        return job()

    api = recorded_api(core={"delete_namespaced_config_map": [ApiException(status=404, reason="Not Found")]},
                       batch={"create_namespaced_job": [created], "read_namespaced_job": [interrupted]})
    seen = []
    task = Task(name="probe", image=IMAGE, command=("true",))
    with pytest.raises(KeyboardInterrupt):
        run_tasks(KubernetesExecutor(KubernetesOptions(namespace="ml-ci"), api=api), [task], progress=seen.append)
    [delete] = [c for c in api.batch.calls if c[0] == "delete_namespaced_job"]
    name, namespace = delete[1]
    assert name.startswith("envctl-") and name.endswith("-probe") and namespace == "ml-ci"
    assert delete[2]["body"].propagation_policy == "Foreground"
    assert seen[-1].startswith("cancelled probe (kubernetes ")


def test_a_refused_job_removes_the_configmap_it_left(tmp_path):
    api = recorded_api(core={}, batch={"create_namespaced_job": [forbidden()]})
    task = Task(name="probe", image=IMAGE, command=("true",))
    with pytest.raises(FleetError, match=r"^create job envctl-\w+-probe: forbidden in namespace ml-ci: "):
        KubernetesExecutor(KubernetesOptions(namespace="ml-ci"), api=api).submit([task])
    assert [c[0] for c in api.core.calls] == ["create_namespaced_config_map", "delete_namespaced_config_map"]


def test_an_unreachable_api_server_is_one_line():
    api = KubeApi(ApiClient(Configuration(host="http://127.0.0.1:9")), context="prod", namespace="ml-ci")
    api.core.api_client.configuration.retries = 0
    with pytest.raises(FleetError, match=r"^create configmap envctl-\w+-files: cannot reach the API server "
                                         r"of context prod: "):
        KubernetesExecutor(KubernetesOptions(namespace="ml-ci"), api=api).submit(
            [Task(name="probe", image=IMAGE, command=("true",))])


def test_the_kubeconfigs_context_is_loaded_or_named(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        clusters: [{name: gpus, cluster: {server: "https://10.0.0.1:6443"}}]
        users: [{name: ci, user: {token: not-a-secret}}]
        contexts: [{name: prod, context: {cluster: gpus, user: ci, namespace: ml-ci}}]
        current-context: prod
        """))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    api = KubeApi.connect(context="prod", namespace="ml-ci")
    assert api.core.api_client.configuration.host == "https://10.0.0.1:6443"
    with pytest.raises(FleetError, match="^cannot load the kubeconfig context staging: ") as caught:
        KubeApi.connect(context="staging", namespace="ml-ci")
    assert "kubectl config get-contexts" in caught.value.hint


def test_a_json_log_stays_json_through_the_real_client(tmp_path):
    """Older clients parse a log that is one JSON document and return its Python repr
    (kubernetes-client/python#1354); KubeApi.log reads it raw. Served by a stdlib HTTP server
    standing in for the log endpoint, the one API answer envctl reads as text."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    body = json.dumps(DOC).encode()

    class Kubelet(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path.startswith(f"/api/v1/namespaces/ml-ci/pods/{POD}/log") else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Kubelet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = KubeApi(ApiClient(Configuration(host=f"http://127.0.0.1:{server.server_port}")),
                      context="kind-envctl", namespace="ml-ci")
        assert json.loads(api.log(pod("Succeeded", terminated("Completed", 0)))) == DOC
    finally:
        server.shutdown()
        server.server_close()
