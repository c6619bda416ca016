"""`envctl matrix verify` end to end on the real engine: CI's slice of two combinations.

pytorch-2.13-cpu on its spec's Python 3.11 (the session's cpu_image: not built twice) is
verified; the same torch on Python 3.9 fails for a real reason, PyPI has no torch 2.13 wheel for
it.  The sweep is first stopped with SIGINT mid-probe, then resumed, then run once more with
nothing new; the dashboard is read back from the page the resumed run wrote.
"""

from __future__ import annotations

import json
import signal
import time
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from envctl.build.plan import LABEL_LOCK_HASH
from tests.engine.conftest import run_envctl
from tests.faults.conftest import start_envctl, wait_for

SLICE = ("matrix", "verify", "--since", "2.13", "--until", "2.13", "--variants", "cpu",
         "--python", "3.11", "--python", "3.9")
NO_WHEEL = "no wheel for Python 3.9: torch 2.13 has wheels for CPython 3.10 to 3.14"


@pytest.fixture(scope="module")
def sweep(cpu_image, engine_env, docker_client, tmp_path_factory):
    """The slice interrupted, resumed (with --html and --json), then run again: their outputs."""
    root = tmp_path_factory.mktemp("matrix-verify")
    env = {**engine_env, "ENVCTL_RECORDS": str(root / "records.db")}
    proc = start_envctl(*SLICE, env=env)
    image_id = cpu_image["image_id"]
    wait_for(lambda: docker_client.containers.list(filters={"ancestor": image_id}), timeout=300, interval=0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    interrupted = SimpleNamespace(returncode=proc.returncode, stderr=err,
                                  left=docker_client.containers.list(all=True, filters={"ancestor": image_id}))
    resumed = run_envctl(*SLICE, "--html", str(root / "dash"), "--json", env=env)
    start = time.monotonic()
    again = run_envctl(*SLICE, env=env)
    again.seconds = time.monotonic() - start
    return SimpleNamespace(interrupted=interrupted, resumed=resumed, again=again, page=root / "dash" / "index.html",
                           cpu_image=cpu_image)


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(sweep):
    first = sweep.interrupted
    assert first.returncode == 130, first.stderr[-2000:]
    assert "Traceback" not in first.stderr
    assert "interrupted after 0 of 2: the same command resumes" in first.stderr
    assert first.left == []  # the probe's container went with the interrupt
    assert sweep.resumed.returncode == 0, sweep.resumed.stderr[-3000:]
    assert "0 from the records" in sweep.resumed.stderr  # nothing was recorded as done by the interrupted run


def test_the_slice_verifies_one_and_names_the_others_failure(sweep):
    err = sweep.resumed.stderr
    assert "pytorch-2.13-cpu (Python 3.11): verified (" in err
    assert f"pytorch-2.13-cpu (Python 3.9): no wheel for that Python: {NO_WHEEL}\n" in err
    assert "2 of 2 combinations in" in err and "1 verified, 0 failed, 1 not buildable here" in err
    assert "not verified: no wheel for that Python 1\n" in err
    cells = {c["requested_python"]: c for c in json.loads(sweep.resumed.stdout)["cells"]}
    ok, bad = cells["3.11"], cells["3.9"]
    assert ok["state"] == "verified" and ok["python"] == "3.11" and ok["versions"]["torch"] == "2.13.0+cpu"
    assert ok["size"] == sweep.cpu_image["size"] and ok["verify_s"] > 0 and ok["build_s"] >= 0
    assert ok["lock_hash"] == sweep.cpu_image["labels"][LABEL_LOCK_HASH]
    assert (bad["state"], bad["failure"], bad["reason"]) == ("grey", "no wheel for that Python", NO_WHEEL)


def test_a_run_with_nothing_new_redoes_nothing_in_seconds(sweep):
    again = sweep.again
    assert again.returncode == 0, again.stderr[-2000:]
    assert "pytorch-2.13-cpu (Python 3.11): already verified for lock " in again.stderr
    assert "1 from the records" in again.stderr and "running the probe" not in again.stderr
    assert again.seconds < 5


class _Cells(HTMLParser):
    """Each grid cell of the page: its state class, bold word, reason and facts."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self.headings: list[str] = []
        self._part: str | None = None
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "cell" in (a.get("class") or ""):
            self.cells.append({"class": a["class"].split()[1], "title": a.get("title"), "state": "", "reason": "",
                               "facts": ""})
        elif tag == "span" and self.cells and a.get("class") in ("state", "reason", "facts"):
            self._part = a["class"]
        self._in_th = tag == "th"

    def handle_endtag(self, tag):
        if tag == "span":
            self._part = None
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._part:
            self.cells[-1][self._part] += data
        elif self._in_th:
            self.headings.append(data)


def test_the_dashboard_shows_each_cell_with_its_reason_and_versions(sweep):
    page = sweep.page.read_text()
    assert "<script" not in page and "http" not in page.split("</style>")[0]  # self-contained
    parsed = _Cells()
    parsed.feed(page)
    assert "torch 2.13" in parsed.headings
    assert "cpu / Python 3.11" in parsed.headings and "cpu / Python 3.9" in parsed.headings
    ok, bad = parsed.cells
    assert (ok["class"], ok["state"]) == ("verified", "verified")
    assert ok["reason"].endswith("checks passed, 8 benchmark rows") or "checks passed" in ok["reason"]
    assert f"{sweep.cpu_image['size'] / 1e9:.2f} GB" in ok["facts"] and "verify " in ok["facts"]
    assert "torch 2.13.0+cpu" in ok["facts"] and "Python 3.11" in ok["facts"]
    assert (bad["class"], bad["state"], bad["reason"]) == ("grey", "no wheel for that Python", NO_WHEEL)
    assert "<li>no wheel for that Python: 1</li>" in page
    assert "pytorch-2.13-cpu (Python 3.11)</th><td><span class=\"bar\"" in page  # the speedup view


def test_report_rebuilds_the_page_from_the_records(sweep, engine_env, tmp_path):
    env = {**engine_env, "ENVCTL_RECORDS": str(sweep.page.parents[1] / "records.db")}
    report = run_envctl(*("matrix", "report") + SLICE[2:], "--html", str(tmp_path), env=env)
    assert report.returncode == 0, report.stderr[-2000:]
    assert report.stdout.splitlines()[0].startswith("pytorch-2.13-cpu (Python 3.11): verified: ")
    assert report.stdout.splitlines()[1] == f"pytorch-2.13-cpu (Python 3.9): grey: {NO_WHEEL}"
    parsed = _Cells()
    parsed.feed((tmp_path / "index.html").read_text())
    assert [c["class"] for c in parsed.cells] == ["verified", "grey"]


def _exists(client, image_id: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(image_id)
    except ImageNotFound:
        return False
    return True


def test_a_build_of_its_own_is_given_back_and_a_failure_is_classed(engine_env, docker_client, tmp_path):
    """pytorch-2.13-cpu on the base without g++: the sweep builds it (no image of that spec was
    there), its verify fails as "missing compiler", and --max-disk (1 MB: no image fits) removes
    the image it built once it is verified."""
    from tests.engine.conftest import project_with_base

    root = project_with_base(tmp_path / "nocc", "envctl/debian:bookworm-minimal")
    env = {**engine_env, "ENVCTL_PROJECT": str(root), "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    result = run_envctl("matrix", "verify", "--since", "2.13", "--until", "2.13", "--variants", "cpu",
                        "--max-disk", "0.001", "--json", env=env)
    built = [r for r in json.loads(run_envctl("history", "--json", env=env).stdout) if r["kind"] == "build"]
    try:
        assert result.returncode == 1, result.stderr[-3000:]
        [cell] = json.loads(result.stdout)["cells"]
        assert (cell["state"], cell["failure"]) == ("failed", "missing compiler")
        assert cell["reason"].startswith("c++ compiler: ") and cell["size"] > 0 and cell["build_s"] > 0
        assert "pytorch-2.13-cpu: missing compiler: c++ compiler: " in result.stderr
        assert "gave back 1 images" in result.stderr and "not verified: missing compiler 1" in result.stderr
        assert "GB of unused build cache" in result.stderr  # the removed layers really left the disk
        [build] = built  # the sweep built it: no image of this spec and lock was there
        assert build["ok"] and build["image_id"]
        assert not _exists(docker_client, build["image_id"])  # given back under --max-disk
    finally:
        for run in built:  # only the image this test's sweep built, should it still be there
            if run.get("image_id") and _exists(docker_client, run["image_id"]):
                docker_client.images.remove(run["image_id"], force=True)
