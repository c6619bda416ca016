"""envctl build --push against a real registry (Debian's docker-registry, the session's `registry`)."""

from __future__ import annotations

import json
import urllib.request

import hashlib
import io
import tarfile
import time
from pathlib import Path

import pytest

from envctl.engine import Engine
from envctl.records import Records
from envctl.registry import Registry, epoch_time

from .conftest import REPO, project_with_base, run_envctl

EPOCH = 315532800


def _load_image(docker_client, *, created: str, tag: str) -> str:
    """Load a one-layer image whose config differs from its twin's only in its times (what two
    no-cache builds of one lock give); its id."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = b"the same bytes in every build\n"
        info = tarfile.TarInfo("etc/envctl-test")
        info.size, info.mtime = len(data), EPOCH
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Labels": {"io.envctl.spec": "push-twin", "org.opencontainers.image.created": created}},
        "history": [{"created": created, "created_by": "COPY envctl-test /etc/"}],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, body in (("layer/layer.tar", layer_bytes), (config_name, config), ("manifest.json", json.dumps(
                [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    [image] = docker_client.images.load(archive.getvalue())
    return image.id


@pytest.fixture
def twins(docker_client):
    """Two images of the same layer built at different times."""
    ids = [_load_image(docker_client, created=f"2026-12-0{day}T10:00:00.123456789Z", tag=f"envctl-test/twin:{day}")
           for day in (1, 2)]
    yield ids
    for day in (1, 2):
        docker_client.images.remove(f"envctl-test/twin:{day}", force=True)


def test_two_builds_of_one_lock_push_one_digest(twins, registry, tmp_path, docker_client):
    from envctl.push import push_built

    assert twins[0] != twins[1]  # different image ids, as two no-cache builds
    engine, records = Engine.connect(), Records(tmp_path / "records.db")
    target = Registry.parse(f"{registry}/fleet")
    pushed = [push_built(engine, engine.image(image_id), name="push-twin", registry=target, tag="lockhash",
                         lock_hash="sha256:lock", epoch=EPOCH, records=records) for image_id in twins]
    assert pushed[0].ref == pushed[1].ref and pushed[0].ref.startswith(f"{registry}/fleet/push-twin@sha256:")
    manifest = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"http://{registry}/v2/fleet/push-twin/manifests/{pushed[0].digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}), timeout=10).read())
    config = json.loads(urllib.request.urlopen(
        f"http://{registry}/v2/fleet/push-twin/blobs/{manifest['config']['digest']}", timeout=10).read())
    assert config["created"] == epoch_time(EPOCH) == "1980-01-01T00:00:00Z"
    assert {h["created"] for h in config["history"]} == {epoch_time(EPOCH)}
    assert config["config"]["Labels"]["org.opencontainers.image.created"] == epoch_time(EPOCH)
    assert records.last_push("push-twin")["ref"] == pushed[1].ref
    # The engine pulls what was pushed, by digest: the manifest and config are valid to it.
    pulled = docker_client.images.pull(pushed[0].ref)
    assert pulled.attrs["RootFS"]["Layers"] == docker_client.images.get(twins[0]).attrs["RootFS"]["Layers"]
    docker_client.images.remove(pulled.id, force=True)
    # Pushing again what the registry holds asks the registry, uploads nothing, and is quick.
    start = time.monotonic()
    again = push_built(engine, engine.image(twins[1]), name="push-twin", registry=target, tag="lockhash",
                       lock_hash="sha256:lock", epoch=EPOCH, records=records)
    assert again.ref == pushed[0].ref and again.uploaded is False and time.monotonic() - start < 1


def test_push_records_by_digest_and_images_and_catalog_show_it(cpu_image, engine_env, registry, tmp_path):
    env = {**engine_env, "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    first = run_envctl("push", "pytorch-2.13-cpu", "--registry", f"{registry}/ci", "--json", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads(first.stdout)
    assert report["ref"] == f"{registry}/ci/pytorch-2.13-cpu@{report['digest']}" and report["uploaded"] is True
    assert report["image_id"] == cpu_image["image_id"]
    again = run_envctl("push", "pytorch-2.13-cpu", "--registry", f"{registry}/ci", env=env)
    assert again.returncode == 0 and again.stdout.strip() == report["ref"]
    assert "already there" in again.stderr
    assert Records(Path(env["ENVCTL_RECORDS"])).last_push("pytorch-2.13-cpu")["ref"] == report["ref"]
    images = json.loads(run_envctl("images", "--json", env=env).stdout)
    assert report["ref"] in [row["pushed"] for row in images if row["id"] == report["image_id"].split(":")[1][:12]]
    catalog = json.loads(run_envctl("catalog", "--json", env=env).stdout)
    assert {row["name"]: row["pushed"] for row in catalog}["pytorch-2.13-cpu"] == report["ref"]
    table = run_envctl("catalog", "--wide", env={**env, "COLUMNS": "250"}).stdout
    assert f"{registry}/ci/pytorch-2.13-cpu@{report['digest'].split(':')[1][:12]}" in table


def test_a_stale_lock_or_an_image_never_built_is_refused_in_one_line(engine_env, registry, tmp_path):
    project = project_with_base(tmp_path / "p", "envctl/debian:bookworm")
    # a base no image was ever built on: the lock stays current, and no image has this spec's content
    # (whatever this engine built before, on the machine running the tests)
    cuda_spec = project / "images" / "pytorch-2.8-cu128.yaml"
    cuda_spec.write_text(cuda_spec.read_text().replace("base: envctl/debian:bookworm",
                                                       "base: envctl/debian:never-built-on"))
    env = {**engine_env, "ENVCTL_PROJECT": str(project), "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    never = run_envctl("push", "pytorch-2.8-cu128", "--registry", registry, env=env)
    assert never.returncode == 1 and "no image of pytorch-2.8-cu128 built" in never.stderr
    assert "envctl build pytorch-2.8-cu128" in never.stderr and "Traceback" not in never.stderr
    spec = project / "images" / "pytorch-2.13-cpu.yaml"
    spec.write_text(spec.read_text().replace("numpy==2.3.5", "numpy==2.3.4"))
    stale = run_envctl("push", "pytorch-2.13-cpu", "--registry", registry, env=env)
    assert stale.returncode == 1 and "envctl lock pytorch-2.13-cpu" in stale.stderr
    assert "Traceback" not in stale.stderr and len(stale.stderr.strip().splitlines()) == 2
    bad = run_envctl("push", "pytorch-2.13-cpu", "--registry", "https://" + registry, env=env)
    assert bad.returncode == 2 and "--registry https://" in bad.stderr and "without a scheme" in bad.stderr

def test_build_push_lands_in_the_registry(cpu_image, engine_env, registry, docker_client):
    result = run_envctl("build", "pytorch-2.13-cpu", "--push", registry, "--json", env=engine_env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    repo, tag = report["tag"].split("/", 1)[-1].rsplit(":", 1)
    port = registry.split(":")[1]
    tags = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/{repo}/tags/list", timeout=10).read())
    assert tag in tags["tags"]
    manifest = urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}), timeout=10)
    assert json.loads(manifest.read())["config"]["digest"] == report["image_id"]
    docker_client.images.remove(f"{registry}/{repo}:{tag}")


def test_registry_up_is_idempotent(registry):
    import os
    import subprocess

    port = registry.rsplit(":", 1)[1]
    again = subprocess.run(["bash", str(REPO / "scripts" / "registry-up.sh")], capture_output=True, text=True,
                           env={**os.environ, "ENVCTL_REGISTRY_PORT": port}, timeout=60)
    assert again.returncode == 0 and again.stdout == f"127.0.0.1:{port}\n"
    assert "a registry already answers" in again.stderr
    bad = subprocess.run(["bash", str(REPO / "scripts" / "registry-up.sh"), "50x"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "port '50x' is not a number" in bad.stderr and bad.stdout == ""
