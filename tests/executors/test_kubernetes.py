"""The Kubernetes executor (issue #25), tested without a cluster (none can run here): every
manifest envctl writes is validated strictly against the official OpenAPI schemas of v1.28 to
v1.37 (kubernetes-validate) and read back by the official client's models; the watch, collect
and cancel logic is judged on the client's own model objects, made as the client makes them
from an API server's JSON."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes.client import ApiClient

from envctl.errors import FleetError, UsageError
from envctl.executors import Mount, Sandbox, Task
from envctl.executors.k8sjobs import submission_manifests
from envctl.executors.kubernetes import KubernetesExecutor, KubernetesOptions
from envctl.probe import PROBE_DIR

VERSIONS = [f"1.{minor}" for minor in range(28, 38)]
IMAGE = "registry.example:5000/envctl/pytorch-2.13-cpu@sha256:" + "ab" * 32
H100 = KubernetesOptions(context="prod", namespace="ml-ci", gpu_product="NVIDIA-H100-80GB-HBM3", gpus=1,
                         driver_major=580, wait_s=120)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def model(data: dict, kind: str):
    """The client's model object for ``data``, deserialized as the client reads an API answer."""
    return ApiClient()._ApiClient__deserialize(data, kind)


def probe_task(tmp_path: Path, name: str = "probe", **fields) -> Task:
    config = tmp_path / name
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps({"gpus": "all", "level": "quick"}))
    fields = {"image": IMAGE, "gpus": "1", "timeout_s": 300,
              "labels": {"envctl.io/image": "pytorch-2.13-cpu", "envctl.io/lock": "8ca547b95e04",
                         "envctl.io/target": "h100"}, **fields}
    return Task(name=name, command=("python", "/opt/envctl-probe/smoke.py", "--config",
                                                 "/opt/envctl-config/config.json"),
                mounts=(Mount(PROBE_DIR, "/opt/envctl-probe"), Mount(config, "/opt/envctl-config")), **fields)


def documents(tasks, options=H100, submission="0123abcd") -> list[dict]:
    return submission_manifests(tasks, options, submission).documents()


# -- the manifests against the official schemas and models --------------------------------------

CASES = {
    "gpu pool with a driver": lambda tmp: documents([probe_task(tmp)]),
    "no GPU, no pool": lambda tmp: documents([probe_task(tmp, gpus=None)], KubernetesOptions()),
    "sandboxed (compat run)": lambda tmp: documents([probe_task(tmp, sandbox=Sandbox(exec_tmp=True),
                                                               environment={"TORCH_HOME": "/tmp/torch"})]),
    "two tasks sharing the probe files": lambda tmp: documents([probe_task(tmp, "a"), probe_task(tmp, "b")]),
    "eight GPUs of one node (the multi-GPU checks)": lambda tmp: documents([probe_task(tmp, gpus="8")],
                                                                           KubernetesOptions()),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_passes_the_strict_schemas(tmp_path, case, version):
    for doc in CASES[case](tmp_path):
        assert kubernetes_validate.validate(doc, version, strict=True) == version


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_manifest_reads_back_into_the_clients_models(tmp_path, case):
    client = ApiClient()
    for doc in CASES[case](tmp_path):
        read = model(doc, "V1" + doc["kind"])
        assert type(read).__name__ == "V1" + doc["kind"]
        assert client.sanitize_for_serialization(read) == doc  # nothing dropped, nothing added


def test_the_job_carries_each_rule_of_the_issue(tmp_path):
    config_map, job = documents([probe_task(tmp_path)])
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                                   "nvidia.com/cuda.driver.major": "580"}
    assert pod["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert pod["automountServiceAccountToken"] is False and pod["hostNetwork"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65534
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["activeDeadlineSeconds"] == 300 + 120  # the task's time plus the Pending wait
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "envctl" and labels["envctl.io/image"] == "pytorch-2.13-cpu"
    assert labels["envctl.io/lock"] == "8ca547b95e04" and labels["envctl.io/target"] == "h100"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    for name in (job["metadata"]["name"], config_map["metadata"]["name"], container["name"]):
        assert DNS_LABEL.match(name), name
    assert job["metadata"]["namespace"] == config_map["metadata"]["namespace"] == "ml-ci"


def test_the_configmap_holds_the_mounted_files_byte_for_byte_read_only(tmp_path):
    task = probe_task(tmp_path)
    config_map, job = documents([task])
    pod = job["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    seen = {}
    for volume in pod["volumes"]:
        if "configMap" not in volume:
            continue
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        mount = mounts[volume["name"]]
        assert mount["readOnly"] is True
        source = next(m.source for m in task.mounts if m.target == mount["mountPath"])
        for item in volume["configMap"]["items"]:
            assert re.fullmatch(r"[-._a-zA-Z0-9]+", item["key"])  # a valid ConfigMap key
            seen[mount["mountPath"] + "/" + item["path"]] = config_map["data"][item["key"]]
            assert config_map["data"][item["key"]] == (source / item["path"]).read_text()
    on_disk = {f"/opt/envctl-probe/{p.relative_to(PROBE_DIR)}" for p in PROBE_DIR.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert on_disk | {"/opt/envctl-config/config.json"} == set(seen)


def test_two_tasks_share_one_configmap_and_keep_their_own_configs(tmp_path):
    a, b = probe_task(tmp_path, "a"), probe_task(tmp_path, "b")
    (tmp_path / "b" / "config.json").write_text('{"gpus": "none"}')
    config_map, job_a, job_b = documents([a, b])
    keys = lambda job: {i["path"]: i["key"] for v in job["spec"]["template"]["spec"]["volumes"]  # noqa: E731
                        if "configMap" in v for i in v["configMap"]["items"]}
    assert keys(job_a)["smoke.py"] == keys(job_b)["smoke.py"]
    assert config_map["data"][keys(job_b)["config.json"]] == '{"gpus": "none"}'
    assert keys(job_a)["config.json"] != keys(job_b)["config.json"]
    assert job_a["metadata"]["name"] != job_b["metadata"]["name"]


@pytest.mark.parametrize("gpus, options, dshm", [("8", KubernetesOptions(), True), ("1", H100, False),
                                                  ("all", KubernetesOptions(gpus=2), True)])
def test_several_gpus_get_a_memory_backed_dev_shm_for_nccl(tmp_path, gpus, options, dshm):
    # a pod's /dev/shm is 64 MiB: NCCL between the GPUs of one node needs more
    _, job = documents([probe_task(tmp_path, gpus=gpus)], options)
    pod = job["spec"]["template"]["spec"]
    volume = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    assert (volume in pod["volumes"]) is dshm
    assert ({"mountPath": "/dev/shm", "name": "dshm"} in pod["containers"][0]["volumeMounts"]) is dshm


def test_the_sandbox_becomes_limits(tmp_path):
    sandbox = Sandbox(mem_limit="2g", nano_cpus=1_500_000_000)
    _, job = documents([probe_task(tmp_path, gpus=None, sandbox=sandbox)], KubernetesOptions())
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "1500m", "memory": "2Gi"}
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}} in pod["volumes"]  # as the local sandbox's tmpfs
    assert "tolerations" not in pod and "nodeSelector" not in pod  # no GPU: no pool, no GPU taint to tolerate


def test_the_yaml_is_for_kubectl_apply_and_the_same_each_time(tmp_path):
    executor = KubernetesExecutor(H100)
    text = executor.plan([probe_task(tmp_path)])
    (tmp_path / "again").mkdir()
    assert executor.plan([probe_task(tmp_path / "again")]) == text  # the same tasks, the same manifests
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    submission = docs[0]["metadata"]["labels"]["envctl.io/submission"]
    assert docs == documents([probe_task(tmp_path / "again")], submission=submission)  # YAML read back
    assert "nvidia.com/gpu: '1'" in text  # a quoted quantity
    assert text.splitlines()[1] == "# Review, then: kubectl apply --namespace ml-ci -f -"


# -- each rule broken, and refused --------------------------------------------------------------

def _container(doc):
    return doc["spec"]["template"]["spec"]["containers"][0]


def _unquoted_gpu(doc):
    _container(doc)["resources"]["limits"]["nvidia.com/gpu"] = 1


def _unknown_field(doc):
    doc["spec"]["template"]["spec"]["nodeSelecter"] = {"nvidia.com/gpu.product": "NVIDIA-L4"}


def _no_container_name(doc):
    del _container(doc)["name"]


def _selector_without_operator(doc):
    doc["spec"]["selector"] = {"matchExpressions": [{"key": "envctl.io/task", "values": ["probe"]}]}


def _no_template(doc):
    del doc["spec"]["template"]


def _toleration_typo(doc):
    doc["spec"]["template"]["spec"]["tolerations"][0]["operater"] = "Exists"


@pytest.mark.parametrize("breaks, refused_by", [
    (_unquoted_gpu, {"models"}),  # the schemas allow an integer quantity; the client's models do not
    (_unknown_field, {"schema"}),
    (_toleration_typo, {"schema"}),
    (_no_container_name, {"schema", "models"}),
    (_selector_without_operator, {"schema", "models"}),
    (_no_template, {"schema", "models"}),
])
def test_a_broken_job_is_refused(tmp_path, breaks, refused_by):
    _, job = documents([probe_task(tmp_path)])
    broken = copy.deepcopy(job)
    breaks(broken)
    refusals = set()
    for version in ("1.28", "1.37"):
        try:
            kubernetes_validate.validate(broken, version, strict=True)
        except kubernetes_validate.ValidationError:
            refusals.add("schema")
    try:
        model(broken, "V1Job")
    except (ValueError, TypeError):  # the client's validation (pydantic's ValidationError is a ValueError)
        refusals.add("models")
    assert refusals >= refused_by


def test_an_image_not_by_digest_is_refused(tmp_path):
    task = probe_task(tmp_path, image="pytorch-2.13-cpu:latest")
    with pytest.raises(UsageError, match=r"task probe: image pytorch-2.13-cpu:latest is not a registry "
                                         r"reference by digest") as caught:
        documents([task])
    assert "envctl push" in caught.value.hint


def test_all_gpus_without_a_count_is_refused(tmp_path):
    with pytest.raises(UsageError, match="task probe asks for all GPUs: a Kubernetes Job asks for a count"):
        documents([probe_task(tmp_path, gpus="all")], KubernetesOptions(gpu_product="NVIDIA-L4"))
    _, job = documents([probe_task(tmp_path, "b", gpus="all")], KubernetesOptions(gpus=2))
    assert _container(job)["resources"]["limits"] == {"nvidia.com/gpu": "2"}


def test_files_past_a_configmaps_size_are_refused(tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "weights.bin").write_bytes(bytes(range(256)) * 5000)
    task = Task(name="big", image=IMAGE, command=("true",), mounts=(Mount(big, "/data"),))
    with pytest.raises(FleetError, match=r"the files the tasks mount are \d+ bytes; a ConfigMap holds at most"):
        documents([task])


def test_long_label_values_keep_their_full_text_in_an_annotation(tmp_path):
    target = "a-target-name-far-longer-than-a-kubernetes-label-value-may-be-at-all"
    task = probe_task(tmp_path, labels={"envctl.io/target": target})
    _, job = documents([task])
    assert job["metadata"]["labels"]["envctl.io/target"] == target[:63].rstrip("-")
    assert job["metadata"]["annotations"] == {"envctl.io/target": target}
    for version in ("1.28", "1.37"):
        kubernetes_validate.validate(job, version, strict=True)


# -- the CLI's path: envctl verify NAME --on kubernetes --dry-run ---------------------------------

def test_verify_dry_run_prints_the_verify_workflows_probe_as_manifests(project):
    from envctl.catalog import find_project
    from envctl.lock import load_lock

    from envctl.verify import dry_run, plan_verify

    plan = plan_verify(find_project(), "pytorch-2.13-cpu", executor=KubernetesExecutor(H100), image=IMAGE,
                       gpus="1", target="h100", level="quick")
    text = dry_run(plan)
    config_map, job = docs = list(yaml.safe_load_all(text))
    for doc in docs:
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    lock = load_lock(project / "locks" / "pytorch-2.13-cpu.conda-lock.yml")
    assert job["metadata"]["labels"] | {"envctl.io/submission": "-"} == {
        "app.kubernetes.io/managed-by": "envctl", "envctl.io/submission": "-", "envctl.io/task": "probe",
        "envctl.io/image": "pytorch-2.13-cpu", "envctl.io/lock": lock.lock_hash.split(":")[-1][:12],
        "envctl.io/target": "h100"}
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE and container["args"][-2:] == ["--level", "quick"]
    config = json.loads(next(v for k, v in config_map["data"].items() if k.endswith("-config.json")))
    assert config["gpus"] == 1 and config["expect"]["torch"] == "2.13.0"  # the workflow's probe config


def test_verify_dry_run_refuses_a_bad_level_before_anything(project):
    from envctl.catalog import find_project

    with pytest.raises(UsageError, match="--level fast is not a probe level"):
        from envctl.verify import plan_verify

        plan_verify(find_project(), "pytorch-2.13-cpu", executor=KubernetesExecutor(H100), image=IMAGE, level="fast")


def test_only_kubeapi_talks_to_a_cluster_and_nothing_imports_the_client_early():
    import subprocess
    import sys

    import envctl

    package = Path(envctl.__file__).parent
    talks = re.compile(r"CoreV1Api|BatchV1Api|load_kube_config|load_incluster_config")
    assert [p.name for p in package.rglob("*.py") if talks.search(p.read_text())] == ["kubeapi.py"]
    code = ("import sys, envctl.executors.kubernetes, envctl.executors.k8sjobs, envctl.executors.k8swatch, "
            "envctl.executors.kubeapi; print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"  # the client loads when a manifest is built, not with envctl


def test_long_and_clashing_task_names_make_distinct_dns_names(tmp_path):
    long = "pytorch-2.14-cu130/" + "resnet_" * 10
    tasks = [probe_task(tmp_path, long + "a", gpus=None), probe_task(tmp_path, long + "b", gpus=None),
             probe_task(tmp_path, "Model.PT", gpus=None)]
    _, *jobs = documents(tasks, KubernetesOptions())
    names = [job["metadata"]["name"] for job in jobs]
    assert len(set(names)) == 3 and all(DNS_LABEL.match(n) for n in names), names
    for job in jobs:
        assert DNS_LABEL.match(_container(job)["name"])
        kubernetes_validate.validate(job, "1.37", strict=True)
