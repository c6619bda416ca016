"""envctl.yamldoc: YAML parsed once per content, the same data as PyYAML's, errors never cached."""

import datetime
import subprocess
import sys

import pytest
import yaml

from envctl import yamldoc
from envctl.errors import LockError

SPEC = "name: demo\npython: '3.11'\npip:\n  - numpy==2.3.5\nversions: [1, 2.5, true, null]\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "yaml"


def _cached(cache):
    return [p for p in cache.rglob("*") if p.is_file()]


def test_second_read_comes_from_the_cache_and_equals_pyyaml(cache):
    first = yamldoc.load(SPEC)
    assert first == yaml.safe_load(SPEC)
    [entry] = _cached(cache)
    entry.write_bytes(__import__("marshal").dumps({"name": "from-cache"}))  # prove the hit reads the file
    assert yamldoc.load(SPEC) == {"name": "from-cache"}
    assert yamldoc.load(SPEC, cache=False) == first


def test_an_edited_text_is_parsed_afresh(cache):
    yamldoc.load(SPEC)
    assert yamldoc.load(SPEC.replace("demo", "other"))["name"] == "other"
    assert len(_cached(cache)) == 2


def test_a_hit_needs_no_pyyaml(cache, tmp_path):
    """What the cache is for: a command that reads known files never imports PyYAML."""
    yamldoc.load(SPEC)
    code = ("import sys; from envctl import yamldoc; "
            f"assert yamldoc.load({SPEC!r})['name'] == 'demo'; print('yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"ENVCTL_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "False"


def test_duplicate_keys_are_an_error_only_where_asked_and_never_cached(cache):
    text = "pip: [a]\npip: [b]\n"
    assert yamldoc.load(text) == {"pip": ["b"]}  # YAML's own rule: the last one wins
    for _ in range(2):  # the error again: nothing was cached for the strict read
        with pytest.raises(yamldoc.DocumentError, match="duplicate key 'pip'") as err:
            yamldoc.load(text, unique_keys=True)
        assert err.value.line == 2


def test_invalid_yaml_names_the_line_and_caches_nothing(cache):
    with pytest.raises(yamldoc.DocumentError) as err:
        yamldoc.load("a: [1, 2\nb: 3\n")
    assert err.value.line is not None and err.value.problem
    assert _cached(cache) == []


def test_data_marshal_cannot_hold_is_parsed_each_time(cache):
    assert yamldoc.load("day: 2026-11-24\n") == {"day": datetime.date(2026, 11, 24)}
    assert _cached(cache) == []


def test_an_unwritable_or_torn_cache_only_costs_a_parse(cache):
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the folder belongs")
    assert yamldoc.load(SPEC)["name"] == "demo"
    cache.unlink()
    yamldoc.load(SPEC)
    [entry] = _cached(cache)
    entry.write_bytes(b"\x00torn")
    assert yamldoc.load(SPEC)["name"] == "demo"


def test_an_upgrade_of_envctl_never_reads_an_older_readers_parse(cache, monkeypatch):
    import envctl

    yamldoc.load(SPEC)
    monkeypatch.setattr(envctl, "__version__", envctl.__version__ + ".post1")
    yamldoc.load(SPEC)
    assert len(_cached(cache)) == 2


def test_an_unhashable_key_is_one_error_with_its_line(cache):
    for strict in (True, False):
        with pytest.raises(yamldoc.DocumentError, match="unhashable key") as err:
            yamldoc.load("name: x\n? [a, b]\n: 1\n", unique_keys=strict)
        assert err.value.line == 2


def test_a_tampered_cache_never_changes_what_a_lock_says(cache, project):
    """Builds trust the lock: its text is parsed every time.  Only a re-lock's hints (preferred
    pins, files to read ahead, which uv must name again) come from the cache."""
    import marshal

    from envctl.lock import load_lock

    path = project / "locks" / "pytorch-2.13-cpu.conda-lock.yml"
    real = load_lock(path, hints_only=True)
    [entry] = _cached(cache)
    data = marshal.loads(entry.read_bytes())
    for package in data["package"]:
        package["url"] = "https://evil.example/" + package["url"].rsplit("/", 1)[-1]
    entry.write_bytes(marshal.dumps(data))
    assert load_lock(path) == real
    assert {p.url.rsplit("/", 1)[0] for p in load_lock(path, hints_only=True).pip} == {"https://evil.example"}
    # Hints pass the lock's grammar too: a cached name never becomes a path or a pip option.
    data["package"][0]["url"] = "https://evil.example/..%2F..%2Fx.whl"
    entry.write_bytes(marshal.dumps(data))
    with pytest.raises(LockError, match=r"package\[0\] \(filelock\): url .* does not end in a plain wheel"):
        load_lock(path, hints_only=True)
