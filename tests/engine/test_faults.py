"""Fault tests against the real engine (issue #11): SIGTERM, a hung engine, sandboxed artifacts.

The promise of tests/faults holds here too: no traceback, nothing half-written, nothing
written outside the named paths, every child process and container gone after any signal.
"""

from __future__ import annotations

import json
import signal
import time

from tests.engine.conftest import run_envctl
from tests.faults.conftest import alive, child_with, start_envctl, wait_for


def test_sigterm_during_build_stops_the_builder_and_leaves_no_tag_or_temp(engine_env, docker_client, tmp_path,
                                                                         package_cache):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tag = "envctl/faults-sigterm:build"
    proc = start_envctl("build", "pytorch-2.13-cpu", "--rebuild", "--no-cache", "--tag", tag,
                        env={**engine_env, "TMPDIR": str(tmp)})
    builder = wait_for(lambda: child_with(proc.pid, "--iidfile"), timeout=300)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    assert not alive(builder)
    assert list(tmp.iterdir()) == []  # envctl-iid-*
    assert not list(package_cache.glob("envctl-ctx-*"))
    time.sleep(3)  # a builder left running would tag the image by now
    assert not docker_client.images.list(name=tag)


def test_sigterm_during_verify_removes_the_container(engine_env, docker_client, cpu_image, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = start_envctl("verify", "pytorch-2.13-cpu", "--quick", env={**engine_env, "TMPDIR": str(tmp)})
    image_id = cpu_image["image_id"]
    wait_for(lambda: docker_client.containers.list(filters={"ancestor": image_id}), timeout=120, interval=0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    assert docker_client.containers.list(all=True, filters={"ancestor": image_id}) == []
    assert list(tmp.iterdir()) == []  # envctl-probe-*


def test_build_tag_tags_that_name_only(cpu_image, engine_env, docker_client):
    """#22 item 12: --tag X once also moved the image's default tag to the new build."""
    tag = "envctl/faults-tag:only"
    result = run_envctl("build", "pytorch-2.13-cpu", "--rebuild", "--tag", tag, "--json", env=engine_env)
    assert result.returncode == 0, result.stderr[-3000:]
    built = json.loads(result.stdout)
    try:
        assert built["built"] is True and built["image_id"] != cpu_image["image_id"]
        assert docker_client.images.get(built["image_id"]).tags == [tag]
        assert docker_client.images.get(cpu_image["tag"]).id == cpu_image["image_id"]  # the default tag stayed
    finally:
        docker_client.images.remove(built["image_id"], force=True)
