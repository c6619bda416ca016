"""An interrupt while envctl starts a child never leaves the child running (real processes, real
signals): SIGTERM at a random millisecond of each place that starts a long-lived child.

An interrupt raised inside subprocess.Popen() after its fork once left a child that no one held
(54 of 400 starts), so a pip went on installing, a debootstrap writing, a task running, after
envctl had exited.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from envctl.base import _run_group
from envctl.compat.sandbox import run_contained
from envctl.engine.builders import build_with_cli
from envctl.executors.base import Task
from envctl.executors.host import HostExecutor
from envctl.lock import uv  # noqa: F401 - imported by the pip resolver first: an import cut short by
from envctl.lock.pip import resolve  # the interrupt would be all each round tried
from envctl.prefixstate import run_step

ROUNDS = 150
# A child that would outlive the test.  It never stops printing: a signal that lands just before
# envctl blocks reading a silent child's output is handled only once the read returns (CPython
# runs Python handlers between bytecodes), so the round would wait for the child to end.  One
# process, no grandchildren: `envctl base` waits for a killed group's last member to be gone.
LONG = ["yes", "tick"]


class Interrupt(BaseException):
    """What the test's SIGTERM raises: caught as envctl catches Ctrl-C and SIGTERM (``except
    BaseException``), but no KeyboardInterrupt, after which Popen.communicate waits 0.25 s for the
    child to end, so that a round takes milliseconds."""


def _own_children() -> list[int]:
    """This process's children (/proc's children list of each of its threads): a scan of every
    process takes a second on a busy host."""
    return [int(pid) for task in Path("/proc/self/task").iterdir()
            for pid in (task / "children").read_text().split()]


def _setup_step() -> None:
    run_step(LONG, kind="query", shown="sleep", hint="")


def _pip_resolver() -> None:
    # pip itself (sys.executable -m pip) against a port where nothing listens: it retries for long
    resolve(["mpmath"], python="3.11", platform="linux-64", glibc="2.28", index_url="http://127.0.0.1:9/simple",
            check_network=False)


def _sandboxed_run() -> None:
    run_contained(LONG, timeout=60)


def _host_task() -> None:
    executor = HostExecutor()
    executor.wait(executor.submit([Task(name="t", image=None, command=tuple(LONG))]))


def _base_step() -> None:
    _run_group(LONG)


def _docker_cli_build(tmp: Path) -> None:
    # a stand-in docker CLI: the arguments envctl appends become the shell's $0 and beyond
    build_with_cli((["sh", "-c", "exec yes tick"], {}), tmp, tag="t", dockerfile="Dockerfile", labels={},
                   platform=None, network_mode="none", no_cache=False, on_line=lambda _line: None)


SITES = {"setup step": _setup_step, "pip resolver": _pip_resolver, "sandboxed run": _sandboxed_run,
         "host task": _host_task, "envctl base": _base_step, "docker CLI build": _docker_cli_build}


@pytest.mark.parametrize("site", SITES)
def test_an_interrupt_while_a_child_starts_never_leaves_it_running(site, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVCTL_RESOLVER", "pip")  # pip's resolver, not uv's
    start = SITES[site]
    args = (tmp_path,) if site == "docker CLI build" else ()

    def terminate(_signum, _frame):
        raise Interrupt()

    ctrl_c = signal.getsignal(signal.SIGINT)
    kept = (signal.signal(signal.SIGTERM, terminate),
            signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM)))
    left = []
    try:
        began = time.monotonic()
        for _ in range(ROUNDS):
            signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0002, 0.008))  # before, inside, after Popen
            with pytest.raises(Interrupt):
                start(*args)
            signal.setitimer(signal.ITIMER_REAL, 0)
            # a SIGTERM while the handlers were swapped once left Ctrl-C swallowed for good
            assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (ctrl_c, terminate)
            running = _own_children()
            left += running
            for pid in running:  # this test's own leftovers, ended so the next round starts clean
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, kept[0])
        signal.signal(signal.SIGALRM, kept[1])
    print(f"{site}: {len(left)} of {ROUNDS} starts left running, {time.monotonic() - began:.1f}s", file=sys.stderr)
    assert left == []


def test_interrupts_deferred_raises_the_interrupt_once_the_block_is_done():
    from envctl.children import interrupts_deferred

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # two Ctrl-C while a child starts: one interrupt
            reached.append("the block ran to its end")
    assert reached == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

