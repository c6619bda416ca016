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
