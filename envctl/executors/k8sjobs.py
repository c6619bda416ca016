"""Tasks as Kubernetes manifests, built purely with the official client's models: one ConfigMap per
submission holding the files the tasks mount (the probe travels with the Job; nothing of envctl is
installed on the cluster) and one Job per task, locked down like the local sandbox.

``submission_manifests`` returns the model objects the API module creates; ``to_yaml`` prints them
for ``kubectl apply -f -`` (``--dry-run``). The client is imported here, never at envctl's start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envctl.errors import FleetError, UsageError
from envctl.executors.base import Task, multi_gpu_shm_gib

if TYPE_CHECKING:
    from envctl.executors.kubernetes import KubernetesOptions

MANAGED_BY = "app.kubernetes.io/managed-by"
SUBMISSION = "envctl.io/submission"
TASK = "envctl.io/task"
GPU = "nvidia.com/gpu"  # the NVIDIA device plugin's resource, and the taint its GPU nodes carry
GPU_PRODUCT = "nvidia.com/gpu.product"  # GPU feature discovery's node labels
DRIVER_MAJOR = "nvidia.com/cuda.driver.major"
DEFAULT_WAIT_S = 600.0  # a Pending pod may be waiting for a cluster autoscaler to add a GPU node
TTL_S = 3600  # finished Jobs stay an hour for `kubectl logs`, then the cluster removes them
MAX_CONFIGMAP = 1024 * 1024  # the API server refuses a ConfigMap whose data exceeds 1 MiB
NONROOT = 65534  # nobody, as the local sandbox runs

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DOCKER_SIZE = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)


@dataclass(frozen=True)
class MountedFile:
    """One file of a task's mount, under its ConfigMap key (content-addressed: tasks that mount
    the same probe files share them, and two configs of one name cannot collide)."""

    mount: int
    path: str  # relative to the mount's target
    key: str
    content: bytes


@dataclass(frozen=True)
class Manifests:
    """What a submission creates: its ConfigMap, then a Job per task (in task order)."""

    submission: str
    namespace: str
    config_map: Any  # V1ConfigMap
    jobs: list[Any]  # V1Job

    def documents(self) -> list[dict[str, Any]]:
        """The manifests as the API (and kubectl) reads them: camelCase keys, no nulls."""
        from kubernetes.client import ApiClient

        sanitize = ApiClient().sanitize_for_serialization
        head = ("apiVersion", "kind", "metadata")  # the order people read them in (the client's is alphabetical)
        return [{**{k: doc[k] for k in head}, **{k: v for k, v in doc.items() if k not in head}}
                for doc in (sanitize(self.config_map), *(sanitize(job) for job in self.jobs))]


def config_map_name(submission: str) -> str:
    """The ConfigMap of a submission's mounted files."""
    return f"envctl-{submission}-files"


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label: lower case, letters, digits and inner dashes, at most ``limit``."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    return label or "task"


def label_value(text: str) -> str:
    """``text`` as a label value (63 characters of a restricted set); the full text, when it had to
    change, goes into an annotation of the same key."""
    value = re.sub(r"[^-A-Za-z0-9_.]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def content_id(tasks: Sequence[Task], options: KubernetesOptions) -> str:
    """A submission id from what it runs: the same tasks give the same manifests (a reviewable
    ``--dry-run``); ``submit`` adds its own random id, as a cluster keeps finished Jobs a while."""
    digest = hashlib.sha256(repr(options).encode())
    for task in tasks:
        digest.update(json.dumps([task.name, task.image, task.command, sorted(task.labels.items()),
                                  sorted(task.environment.items()), task.gpus, task.timeout_s,
                                  repr(task.sandbox)]).encode())
        for f in mounted_files([task]):
            digest.update(f.key.encode())
    return digest.hexdigest()[:8]


def mounted_files(tasks: Sequence[Task]) -> list[MountedFile]:
    """Every regular file of every mount, sorted, without Python's byte-code caches (built on the
    host, unread where the mount is read-only, and the biggest part of a ConfigMap's 1 MiB)."""
    files = []
    for task in tasks:
        for index, mount in enumerate(task.mounts):
            if not mount.source.is_dir():
                raise FleetError(f"task {task.name}: {mount.source} is not a folder; "
                                 f"a Kubernetes Job mounts folders (as a ConfigMap)")
            for path in sorted(mount.source.rglob("*")):
                rel = path.relative_to(mount.source)
                if not path.is_file() or path.is_symlink() or "__pycache__" in rel.parts or path.suffix == ".pyc":
                    continue
                content = path.read_bytes()
                readable = re.sub(r"[^-._a-zA-Z0-9]+", "_", rel.as_posix())[-200:]
                key = f"{hashlib.sha256(content).hexdigest()[:12]}-{readable}"
                files.append(MountedFile(index, rel.as_posix(), key, content))
    return files


def gpu_count(task: Task, options: KubernetesOptions) -> int:
    """The GPUs a task's Job asks the device plugin for: the target's count, else the task's."""
    if options.gpus > 0:
        return options.gpus
    if task.gpus in (None, "none"):
        return 0
    if task.gpus.isdigit():
        return int(task.gpus)
    raise UsageError(f"task {task.name} asks for {task.gpus} GPUs: a Kubernetes Job asks for a count",
                     hint="give --gpus N (GPUs of one node), or gpus: N in the fleet target")


def quantity(docker_size: str) -> str:
    """A Docker memory size ("2g") as a Kubernetes quantity ("2Gi"): Docker's units are binary."""
    match = _DOCKER_SIZE.match(docker_size.strip())
    if not match:
        raise ValueError(f"not a Docker memory size: {docker_size!r}")
    number, unit = match.groups()
    return number + {"": "", "b": "", "k": "Ki", "m": "Mi", "g": "Gi"}[unit.lower()]


def submission_manifests(tasks: Sequence[Task], options: KubernetesOptions, submission: str) -> Manifests:
    """The ConfigMap and the Jobs that run ``tasks`` under ``options`` (pure but for reading the
    mounted files). Every task's image must be a registry reference by digest."""
    from kubernetes import client as k

    per_task = [mounted_files([task]) for task in tasks]
    unique = {f.key: f for files in per_task for f in files}
    size = sum(len(key) + len(_encoded(f.content)[1]) for key, f in unique.items())
    if size > MAX_CONFIGMAP:
        raise FleetError(f"the files the tasks mount are {size} bytes; a ConfigMap holds at most {MAX_CONFIGMAP}",
                         hint="mount fewer files into the tasks")
    config_name = config_map_name(submission)
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for f in unique.values():
        is_text, value = _encoded(f.content)
        (data if is_text else binary)[f.key] = value
    config_map = k.V1ConfigMap(
        api_version="v1", kind="ConfigMap", immutable=True,
        metadata=_metadata(config_name, options, {MANAGED_BY: "envctl", SUBMISSION: submission}),
        data=dict(sorted(data.items())) or None, binary_data=dict(sorted(binary.items())) or None)
    jobs = [_job(task, options, name=name, submission=submission, config_name=config_name, files=files)
            for task, name, files in zip(tasks, _job_names(tasks, submission), per_task)]
    return Manifests(submission, options.namespace, config_map, jobs)


def to_yaml(manifests: Manifests) -> str:
    """The manifests as one multi-document YAML for ``kubectl apply -f -``."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # the probe's files read as files (block scalars), not as one escaped line each
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    header = (f"# envctl submission {manifests.submission}: a ConfigMap with the probe files, then "
              f"{len(manifests.jobs)} Job(s).\n# Review, then: kubectl apply --namespace {manifests.namespace} -f -\n")
    return header + yaml.dump_all(manifests.documents(), Dumper=Dumper, sort_keys=False, width=1000,
                                  explicit_start=True)


def _encoded(content: bytes) -> tuple[bool, str]:
    try:
        return True, content.decode("utf-8")
    except UnicodeDecodeError:
        return False, base64.b64encode(content).decode("ascii")


def _job_names(tasks: Sequence[Task], submission: str) -> list[str]:
    names = [f"envctl-{submission}-{dns_label(t.name, 45)}" for t in tasks]
    if len(set(names)) < len(names):  # task names that differ only in what a DNS label cannot hold
        names = [f"envctl-{submission}-{i}-{dns_label(t.name, 40)}" for i, t in enumerate(tasks)]
    return names


def _metadata(name: str, options: KubernetesOptions, labels: Mapping[str, str]):
    from kubernetes import client as k

    shown: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"not a Kubernetes label key: {key!r}")
        shown[key] = label_value(value)
        if shown[key] != value:
            annotations[key] = value
    return k.V1ObjectMeta(name=name, namespace=options.namespace, labels=shown, annotations=annotations or None)


def _job(task: Task, options: KubernetesOptions, *, name: str, submission: str, config_name: str,
         files: list[MountedFile]):
    from kubernetes import client as k

    if "@sha256:" not in task.image:
        raise UsageError(f"task {task.name}: image {task.image} is not a registry reference by digest",
                         hint="push the image first (envctl push NAME); a cluster pulls it by digest")
    gpus = gpu_count(task, options)
    labels = {MANAGED_BY: "envctl", SUBMISSION: submission, TASK: dns_label(task.name), **task.labels}
    meta = _metadata(name, options, labels)
    volumes = [k.V1Volume(name="tmp", empty_dir=k.V1EmptyDirVolumeSource(
        size_limit="512Mi" if task.sandbox else None))]
    mounts = [k.V1VolumeMount(name="tmp", mount_path="/tmp")]
    for index, mount in enumerate(task.mounts):
        items = [k.V1KeyToPath(key=f.key, path=f.path) for f in files if f.mount == index]
        volumes.append(k.V1Volume(name=f"mount-{index}", config_map=k.V1ConfigMapVolumeSource(
            name=config_name, items=items, default_mode=0o444)))
        mounts.append(k.V1VolumeMount(name=f"mount-{index}", mount_path=mount.target, read_only=True))
    shm = multi_gpu_shm_gib(gpus)
    if shm:  # a pod's /dev/shm is 64 MiB unless a memory volume is mounted there
        volumes.append(k.V1Volume(name="dshm", empty_dir=k.V1EmptyDirVolumeSource(medium="Memory",
                                                                                   size_limit=f"{shm}Gi")))
        mounts.append(k.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    limits: dict[str, str] = {}
    if gpus:
        limits[GPU] = str(gpus)  # a quantity is a string: the client's models refuse an integer
    sb = task.sandbox
    if sb is not None:
        limits["memory"] = quantity(sb.mem_limit)
        if sb.nano_cpus:
            limits["cpu"] = f"{sb.nano_cpus // 1_000_000}m"
    node_selector = {}
    if options.gpu_product:
        node_selector[GPU_PRODUCT] = options.gpu_product
    if options.driver_major is not None:
        node_selector[DRIVER_MAJOR] = str(options.driver_major)
    # HOME in the writable /tmp: the root filesystem is read-only and nobody has no home
    env = [k.V1EnvVar(name=key, value=value) for key, value in sorted({"HOME": "/tmp", **task.environment}.items())]
    container = k.V1Container(
        name=dns_label(task.name), image=task.image, image_pull_policy="IfNotPresent",
        args=list(task.command),  # args, not command: the image's entrypoint stays, as with `docker run IMAGE CMD`
        env=env, volume_mounts=mounts, resources=k.V1ResourceRequirements(limits=limits or None),
        security_context=k.V1SecurityContext(
            run_as_non_root=True, run_as_user=NONROOT, run_as_group=NONROOT, read_only_root_filesystem=True,
            allow_privilege_escalation=False, privileged=False, capabilities=k.V1Capabilities(drop=["ALL"])))
    pod = k.V1PodSpec(
        containers=[container], restart_policy="Never", volumes=volumes,
        automount_service_account_token=False, enable_service_links=False, host_network=False,
        node_selector=node_selector or None,
        # GPU nodes carry the device plugin's taint: a pod for a GPU pool tolerates it, others stay off
        tolerations=[k.V1Toleration(key=GPU, operator="Exists", effect="NoSchedule")]
        if gpus or options.gpu_product else None,
        security_context=k.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=NONROOT, run_as_group=NONROOT,
            seccomp_profile=k.V1SeccompProfile(type="RuntimeDefault")))
    wait = options.wait_s if options.wait_s is not None else DEFAULT_WAIT_S
    spec = k.V1JobSpec(
        # the Job's clock starts before scheduling and the image pull: the task's time plus the wait
        active_deadline_seconds=math.ceil(task.timeout_s + wait), backoff_limit=0,
        ttl_seconds_after_finished=TTL_S,
        template=k.V1PodTemplateSpec(metadata=k.V1ObjectMeta(labels=meta.labels, annotations=meta.annotations),
                                     spec=pod))
    return k.V1Job(api_version="batch/v1", kind="Job", metadata=meta, spec=spec)

