"""One seam to Docker: only envctl.engine imports the docker SDK or runs the docker CLI."""

import re
from pathlib import Path

import envctl

PACKAGE = Path(envctl.__file__).parent


def test_only_the_engine_package_touches_docker():
    sdk = re.compile(r"^\s*(import docker\b|from docker\b)", re.M)
    cli = re.compile(r"""\[\s*["'](?:docker|/usr/bin/docker)["']|which\(["']docker["']\)""")
    outside = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if "engine" not in p.relative_to(PACKAGE).parts[:1] and "probes" not in p.parts
               and (sdk.search(p.read_text()) or cli.search(p.read_text()))]
    assert outside == []
    inside = {p.name for p in (PACKAGE / "engine").glob("*.py") if sdk.search(p.read_text()) or cli.search(p.read_text())}
    assert inside == {"client.py", "builders.py", "runline.py"}


def test_an_engine_api_error_is_the_engines_own_message():
    from docker.errors import APIError

    from envctl.engine.builders import short

    class Response:
        status_code, reason, url = 500, "Internal Server Error", "http+docker://localhost/v1.41/containers/b57/start"

    exc = APIError("500 Server Error", response=Response(),
                   explanation='could not select device driver "" with capabilities: [[gpu]]')
    assert str(exc).startswith("500 Server Error for http+docker://localhost/v1.41/containers/b57/start")
    assert short(exc) == 'could not select device driver "" with capabilities: [[gpu]]'
    assert short(RuntimeError("first line\nsecond")) == "first line"
