"""envctl build --push against a real registry (Debian's docker-registry) on localhost."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from .conftest import run_envctl

CONFIG = """version: 0.1
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.fail("docker-registry is not installed (scripts/test.sh installs it: apt-get install docker-registry)",
                    pytrace=False)
    port = _free_port()
    config = tmp_path / "config.yml"
    config.write_text(CONFIG.format(root=tmp_path / "store", port=port))
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the local registry did not start", pytrace=False)
    yield f"localhost:{port}"
    proc.terminate()
    proc.wait(timeout=10)


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
