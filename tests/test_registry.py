"""The registry's pure parts: addresses, and the config that makes one lock one digest."""

from __future__ import annotations

import json

import pytest

from envctl.errors import UsageError
from envctl.registry import Registry, digest_of, normalize_config


def test_addresses_parse_and_bad_ones_name_the_option():
    assert Registry.parse("127.0.0.1:5000") == Registry("127.0.0.1:5000", "")
    assert str(Registry.parse("registry.example.com/ml/team/")) == "registry.example.com/ml/team"
    assert Registry.parse("localhost:5000/x").repository("pytorch-2.13-cpu") == "x/pytorch-2.13-cpu"
    assert Registry.parse("127.0.0.1:5000").loopback and not Registry.parse("reg.example.com").loopback
    for bad, why in (("https://reg.example.com", "without a scheme"), ("team/images", "not a registry host"),
                     ("reg.example.com/Team", "not a repository path component")):
        with pytest.raises(UsageError, match=why) as exc:
            Registry.parse(bad)
        assert str(exc.value).startswith(f"--registry {bad}:") and exc.value.exit_code == 2


def _config(when: str, container: str) -> dict:
    return {"architecture": "amd64", "os": "linux", "created": when, "container": container,
            "config": {"Labels": {"io.envctl.spec": "x", "org.opencontainers.image.created": when[:19] + "Z"}},
            "history": [{"created": when, "created_by": "RUN a"}, {"created": when, "empty_layer": True}],
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}


def test_configs_of_two_builds_normalize_to_one_digest():
    one = normalize_config(_config("2026-12-01T10:00:00.1Z", "c1"), epoch=315532800)
    two = normalize_config(_config("2026-12-06T20:15:29.226168149Z", "c2"), epoch=315532800)
    assert one == two and digest_of(one) == digest_of(two)
    data = json.loads(one)
    assert data["created"] == "1980-01-01T00:00:00Z" and "container" not in data
    assert data["config"]["Labels"]["org.opencontainers.image.created"] == "1980-01-01T00:00:00Z"
    other_layer = _config("2026-12-01T10:00:00.1Z", "c1") | {"rootfs": {"type": "layers", "diff_ids": ["sha256:2"]}}
    assert normalize_config(other_layer, epoch=315532800) != one


@pytest.mark.parametrize("realm", ["http://tokens.example.org/token", "file:///etc/passwd", "ftp://x/y"])
def test_a_token_realm_that_is_not_https_gets_no_login(realm, monkeypatch):
    from envctl.registry import RegistryClient, RegistryError

    monkeypatch.setattr("envctl.engine.registry_login", lambda host: "dXNlcjpwYXNz")  # user:pass
    client = RegistryClient(Registry("registry.example.org", ""))
    with pytest.raises(RegistryError, match="not https, so envctl sends no login there"):
        client._answer(f'Bearer realm="{realm}",service="registry"', "ml/pytorch-2.13-cpu")
