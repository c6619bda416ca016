"""GPUs reach a container through the engine's device requests (the call checked with a
recording client: CI has no GPU; the real engine runs the same code in tests/engine)."""

from __future__ import annotations

import pytest

from envctl.engine import Engine
from envctl.errors import EngineError


class _Container:
    attrs = {"State": {"OOMKilled": False}}

    def __init__(self, error: str | None = None, removed: list | None = None):
        self.error, self.removed = error, removed if removed is not None else []

    def start(self):
        if self.error:
            raise RuntimeError(self.error)

    def wait(self, timeout):
        return {"StatusCode": 0}

    def logs(self, stdout, stderr):
        return b'{"ok": true}' if stdout else b""

    def reload(self):
        pass

    def remove(self, force):
        self.removed.append(self)


class _Containers:
    def __init__(self, error: str | None = None):
        self.calls, self.error, self.removed = [], error, []

    def create(self, **kwargs):
        self.calls.append(kwargs)
        return _Container(self.error, self.removed)


class _Client:
    def __init__(self, error: str | None = None):
        self.containers = _Containers(error)


@pytest.mark.parametrize("gpus, count", [("all", -1), ("2", 2), (1, 1)])
def test_gpus_become_a_device_request_for_gpu_capable_devices(gpus, count):
    client = _Client()
    Engine(client).run("img", ["python", "-V"], gpus=gpus)
    (request,) = client.containers.calls[0]["device_requests"]
    assert request["Count"] == count and request["Capabilities"] == [["gpu"]]


@pytest.mark.parametrize("gpus", [None, "none", 0, "0"])
def test_no_gpus_means_no_device_request(gpus):
    client = _Client()
    Engine(client).run("img", ["python", "-V"], gpus=gpus)
    assert "device_requests" not in client.containers.calls[0]


def test_host_without_nvidia_runtime_gets_one_line_with_what_to_do():
    client = _Client(error='could not select device driver "" with capabilities: [[gpu]]')
    with pytest.raises(EngineError) as err:
        Engine(client).run("img", ["python", "-V"], gpus="all")
    assert "could not select device driver" in str(err.value)
    assert "--gpus none" in err.value.hint and "NVIDIA container toolkit" in err.value.hint
    assert len(client.containers.removed) == 1  # the created container does not stay behind
