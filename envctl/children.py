"""The processes envctl starts and must not outlive (pip, uv, debootstrap, a task, a sandboxed run).

Each is started with Ctrl-C and SIGTERM held back, inside the ``try`` that kills it: an interrupt
raised inside ``subprocess.Popen()`` after its fork leaves a running child that no one holds (54
of 400 starts, interrupted at a random millisecond), so nothing stops it: a pip kept installing
into a prefix after envctl had exited.  A timeout, Ctrl-C or SIGTERM then kills the child (with
``group``, its whole process group) and waits for it before the exception goes on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from contextlib import contextmanager
from typing import Any, Iterator

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back while a child process is started, then raised as usual (once,
    however many came).  Start children under this, inside the ``try`` that kills them.  Off the
    main thread (no signal handlers there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    with _blocked(INTERRUPTS):
        kept = {kind: signal.signal(kind, lambda signum, _frame: caught.append(signum)) for kind in INTERRUPTS}
    try:
        yield
    finally:
        with _blocked(INTERRUPTS):
            for kind, handler in kept.items():
                signal.signal(kind, handler)
        for signum in caught[:1]:
            signal.raise_signal(signum)  # the kept handler raises it here, once the child is held


@contextmanager
def _blocked(kinds: tuple[signal.Signals, ...]) -> Iterator[None]:
    """``kinds`` held pending by the kernel while handlers are swapped: one raised between two
    ``signal.signal()`` calls would leave the other handler swapped for good (Ctrl-C ignored ever
    after).  Handlers of what came meanwhile run as it ends, the new ones.  The children started
    later do not inherit the mask: it is lifted before."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # a pending handler runs here: nothing is changed yet
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, kinds)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def run(cmd: list[str], *, timeout: float | None = None, group: bool = False,
        **popen: Any) -> subprocess.CompletedProcess:
    """``cmd`` to its end, its stdout and stderr captured (``popen``: Popen's other arguments).

    ``group``: a session of its own, whose whole process group is killed (a shell script's wget,
    torch's compile workers), not only ``cmd``.  Past ``timeout`` it is killed and
    ``subprocess.TimeoutExpired`` raised, carrying what a killed group had printed; on Ctrl-C or
    SIGTERM it is killed and waited for before the interrupt goes on.  OSError where ``cmd``
    cannot start."""
    proc: subprocess.Popen | None = None
    try:
        with interrupts_deferred():
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=group,
                                    **popen)
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        assert proc is not None
        kill(proc, group=group)
        # a killed group has closed its ends of the pipes; a lone child's own children may not have
        out, err = proc.communicate() if group else (None, None)
        raise subprocess.TimeoutExpired(cmd, timeout or 0, output=out, stderr=err) from None
    except BaseException:
        if proc is not None:
            kill(proc, group=group)
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def kill(proc: subprocess.Popen, *, group: bool = False) -> None:
    """Kill ``proc`` (with ``group``, its process group: ``proc`` started a session) and wait for
    it.  A group's other members are not our children, so not waited for."""
    if group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is gone already
    proc.kill()
    proc.wait()
