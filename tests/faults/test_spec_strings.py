"""Item 2: every spec string that reaches pip, a solver or Docker is data, never an option."""

from __future__ import annotations

import pytest
import yaml

from envctl.errors import SpecError
from envctl.spec import parse_spec
from tests.faults.conftest import REPO, assert_one_line_error, envctl

CPU = yaml.safe_load((REPO / "images" / "pytorch-2.13-cpu.yaml").read_text())


def _problem(**changes) -> str:
    data = {**CPU, **changes}
    with pytest.raises(SpecError) as info:
        parse_spec(data, path="images/pytorch-2.13-cpu.yaml", expected_name="pytorch-2.13-cpu")
    return str(info.value)


@pytest.mark.parametrize("entry", ["--no-deps", "--index-url=file:///tmp/evil", "-r/etc/passwd", "-e .",
                                   "numpy==2.3.5 --no-deps", "numpy @ file:///tmp/x.whl", "numpy===", "numpy==>2"])
def test_pip_entries_that_are_not_requirements_are_refused(entry):
    assert "pip[1]" in _problem(pip=["numpy==2.3.5", entry])


@pytest.mark.parametrize("key,value,needle", [
    ("base", "--privileged", "base: '--privileged' is not a Docker image reference"),
    ("base", "envctl/debian:bookworm --network=host", "is not a Docker image reference"),
    ("base", "envctl/Debian:bookworm", "is not a Docker image reference"),
    ("base", "repo@sha256:123", "is not a Docker image reference"),
    ("description", "x" * 2_000_000, "description: 2000000 characters; at most 1000"),
    ("description", "two\nlines", "control characters"),
    ("conda", ["--override-channels"], "conda[0]"),
    ("channels", ["--insecure"], "channels[0]"),
    ("pip_index", {"find_links": ["--no-index"]}, "pip_index.find_links[0]"),
    ("pip_index", {"find_links": ["relative/dir"]}, "pip_index.find_links[0]"),
    ("pip_index", {"index_url": "--trusted-host=x", "find_links": ["/opt/wheels"]}, "pip_index.index_url"),
    ("pip_index", {"extra_index_urls": ["ftp://x/simple"], "find_links": ["/opt/wheels"]},
     "pip_index.extra_index_urls[0]"),
])
def test_other_strings_are_validated_by_key(key, value, needle):
    assert needle in _problem(**{key: value})


def test_good_references_and_urls_pass():
    for base in ("envctl/debian:bookworm", "localhost:5000/team/img:1.0", "nvcr.io/nvidia/pytorch:24.01-py3",
                 "debian@sha256:" + "a" * 64):
        parse_spec({**CPU, "base": base}, path="x.yaml")
    parse_spec({**CPU, "pip": ["numpy==2.3.5", "requests[socks]>=2,<3; python_version>='3.8'"]}, path="x.yaml")


def test_duplicate_keys_and_boolean_version_are_refused(project):
    path = project / "images" / "pytorch-2.13-cpu.yaml"
    text = path.read_text()
    path.write_text(text + "pip: [\"--no-deps\"]\n")
    assert_one_line_error(envctl("show", "pytorch-2.13-cpu"), 2, "duplicate key 'pip'", str(path))
    path.write_text(text.replace("version: 1", "version: true"))
    assert_one_line_error(envctl("show", "pytorch-2.13-cpu"), 2, "unsupported spec version True")


@pytest.mark.parametrize("old,new,needles", [
    ("version: 1", "version: 1.0", ["version: unsupported spec version 1.0; allowed: 1"]),
    ("  gpus: none", "  gpus: 100000000000000000000",
     ["smoke.gpus: 100000000000000000000 is not allowed", "a GPU count from 0 to 64"]),
    ("  gpus: none", "  gpus: 1e20", ["smoke.gpus: '1e20' is not allowed", "from 0 to 64"]),
    ("  gpus: none", "  gpus: 1.0e+20", ["smoke.gpus: 1e+20 is not allowed", "from 0 to 64"]),
    ("batch_sizes: [1, 4]", "batch_sizes: [1e23]",
     ["smoke.batch_sizes[0]: '1e23' is not allowed; allowed: an integer from 1 to 65536"]),
    ("batch_sizes: [1, 4]", "batch_sizes: [1, 100000000000000000000000]",
     ["smoke.batch_sizes[1]: 100000000000000000000000 is not allowed", "from 1 to 65536"]),
    ("batch_sizes: [1, 4]", "batch_sizes: [1.0e+23]", ["smoke.batch_sizes[0]: 1e+23 is not allowed"]),
])
def test_values_past_a_range_are_refused_with_the_range(project, old, new, needles):
    path = project / "images" / "pytorch-2.13-cpu.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    assert_one_line_error(envctl("show", "pytorch-2.13-cpu"), 2, str(path), *needles)


def test_lock_refuses_a_pip_option_before_running_pip(project):
    path = project / "images" / "pytorch-2.13-cpu.yaml"
    path.write_text(path.read_text().replace("  - numpy==2.3.5", "  - numpy==2.3.5\n  - --no-deps"))
    before = (project / "locks" / "pytorch-2.13-cpu.conda-lock.yml").read_bytes()
    assert_one_line_error(envctl("lock", "pytorch-2.13-cpu"), 2, "pip[1]", "'--no-deps' is a pip option")
    assert (project / "locks" / "pytorch-2.13-cpu.conda-lock.yml").read_bytes() == before


def test_history_and_doctor_refuse_impossible_names(project):
    assert_one_line_error(envctl("history", "../etc"), 2, "'../etc' is not an image name")
    assert envctl("doctor", "").returncode == 2
    assert "Traceback" not in envctl("doctor", "").stderr
