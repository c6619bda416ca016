"""Layered, reproducible environments: the same lock gives the same layers, and a file
changed inside a built image is named by envctl verify."""

from __future__ import annotations

import json

from envctl.build import LABEL_TREE

from .conftest import run_envctl


def _layers(docker_client, image_id: str) -> list[str]:
    return docker_client.images.get(image_id).attrs["RootFS"]["Layers"]


def test_no_cache_rebuild_of_the_same_lock_gives_identical_layers(cpu_image, engine_env, docker_client):
    again = run_envctl("build", "pytorch-2.13-cpu", "--rebuild", "--no-cache", "--json", env=engine_env)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    try:
        assert second["built"] is True and second["image_id"] != cpu_image["image_id"]  # a new config...
        assert _layers(docker_client, second["image_id"]) == _layers(docker_client, cpu_image["image_id"])
        assert second["env_tree"] == cpu_image["env_tree"] and second["env_tree"].startswith("sha256:")
        # ...and the environment in the layers the spec's data names, venv first.
        assert [layer["layer"] for layer in second["layers"]] == ["venv", "torch", "packages"]
        assert all(layer["bytes"] > 0 for layer in second["layers"])
    finally:  # the session's image stays the one the default tag names
        docker_client.images.get(cpu_image["image_id"]).tag(cpu_image["tag"])
        docker_client.images.remove(second["image_id"], force=True)


def test_verify_names_a_file_edited_inside_the_image(cpu_image, engine_env, docker_client):
    prefix = "/opt/conda/envs/pytorch-2.13-cpu"
    edited = "lib/python3.11/site-packages/torch/version.py"
    container = docker_client.containers.create(
        cpu_image["image_id"], ["sh", "-c", f"echo '# edited' >> {prefix}/{edited} && "
                                            f"touch {prefix}/bin/intruder && rm {prefix}/bin/pip3"])
    container.start()
    assert container.wait()["StatusCode"] == 0
    # Same labels as the built image (tree hash included): verify takes it for the build.
    tampered = container.commit(repository=cpu_image["tag"].split(":")[0], tag=cpu_image["tag"].split(":")[1])
    container.remove()
    try:
        assert tampered.labels[LABEL_TREE] == cpu_image["env_tree"]
        result = run_envctl("verify", "pytorch-2.13-cpu", "--checks-only", "--json", env=engine_env)
        assert result.returncode == 1, result.stderr[-2000:]
        tree = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "env tree")
        assert tree["status"] == "fail"
        assert tree["details"]["changed"] == [edited]
        assert tree["details"]["added"] == ["bin/intruder"]
        assert tree["details"]["removed"] == ["bin/pip3"]
        assert edited in tree["message"] and "bin/intruder" in tree["message"]
    finally:
        docker_client.images.get(cpu_image["image_id"]).tag(cpu_image["tag"])
        docker_client.images.remove(tampered.id, force=True)


def test_untouched_image_passes_the_tree_check(cpu_image, engine_env):
    result = run_envctl("verify", "pytorch-2.13-cpu", "--checks-only", "--json", env=engine_env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    tree = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "env tree")
    assert tree["status"] == "pass" and tree["details"]["hash"] == cpu_image["env_tree"]
