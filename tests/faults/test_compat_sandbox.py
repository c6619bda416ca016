"""Issue #22 item 5: artifacts run by ``compat run --python`` are sandboxed, and end with envctl.

The sandbox itself is tested with the wrapper envctl uses around a hostile payload (an
AOTInductor package runs native code; this payload does what such code would), once with
bubblewrap and once with the unshare fallback; then end to end through the CLI with real
TorchScript artifacts, refusals when no sandbox can be made, and SIGTERM/SIGINT while a model spins.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import pytest

from envctl.compat import sandbox
from tests.faults.conftest import assert_one_line_error, envctl, start_envctl, wait_for

PAYLOAD = r"""
import json, os, socket, sys, time
stage, port = sys.argv[1], int(sys.argv[2])
seen = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "secret": os.environ.get("ENVCTL_SECRET")}
status = open("/proc/self/status").read().splitlines()
seen["caps"] = [ln.split()[1] for ln in status if ln.startswith("CapEff")][0]
def attempt(name, fn):
    try:
        fn()
        seen[name] = "done"
    except (OSError, MemoryError) as exc:
        seen[name] = type(exc).__name__
def docker():
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")
def bomb():
    kids = []
    try:
        while len(kids) < 4000:
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            kids.append(pid)
    finally:
        seen["forks"] = len(kids)
        for pid in kids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
attempt("write_root", lambda: open("/envctl-sandbox-probe", "w").close())
attempt("write_stage", lambda: open(stage + "/planted", "w").close())
for shared in ("/tmp", "/var/tmp", "/dev/shm"):  # anyone may write there on the host
    attempt("write" + shared, lambda: open(shared + "/" + os.path.basename(os.path.dirname(stage)) + "-planted", "w").close())
attempt("read_shadow", lambda: open("/etc/shadow").read())
attempt("docker_sock", docker)
attempt("network", lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close())
attempt("memory_8g", lambda: bytearray(8 << 30))
attempt("fork_bomb", bomb)
attempt("write_home", lambda: open(os.environ["HOME"] + "/mine", "w").close())
print(json.dumps(seen))
"""


@pytest.fixture
def listener():
    """A real TCP server on the host's loopback; yields (port, connections it accepted)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list = []

    def serve() -> None:
        try:
            while True:
                accepted.append(server.accept()[0])
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


@pytest.fixture
def open_dir():
    """A fresh folder others may pass (pytest's own are 0700: the fallback sandbox sees the host's)."""
    folder = Path(tempfile.mkdtemp(prefix="envctl-sandbox-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def reachable_python():
    """An interpreter with torch that uid 65534 can start without bwrap: a venv of Debian's
    python3 outside /root whose .pth names this interpreter's site-packages (same minor version)."""
    base = "/usr/bin/python3"
    version = subprocess.run([base, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert version.stdout.strip() == str(sys.version_info[:2]), "the fallback test needs Debian's python3 of this version"
    folder = Path(tempfile.mkdtemp(prefix="envctl-sandbox-venv-", dir="/tmp"))
    folder.chmod(0o755)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder / "v")], check=True)
    site = folder / "v" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (site / "host.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield str(folder / "v" / "bin" / "python")
    shutil.rmtree(folder, ignore_errors=True)


def _only_util_linux(tmp_path: Path) -> str:
    """A PATH with what the fallback runs (unshare, mount, setpriv, prlimit, sh) but no bwrap."""
    folder = tmp_path / "util-linux"
    folder.mkdir()
    for tool in ("unshare", "mount", "setpriv", "prlimit", "sh"):
        (folder / tool).symlink_to(shutil.which(tool))
    return str(folder)


@pytest.mark.parametrize("kind", ["bwrap", "unshare"])
def test_the_sandbox_refuses_what_a_hostile_artifact_tries(kind, open_dir, listener, monkeypatch):
    monkeypatch.setenv("ENVCTL_SECRET", "token-123")
    port, accepted = listener
    # bwrap binds even an interpreter under /root (0700); without it the sandbox user needs one it can reach
    python = sys.executable if kind == "bwrap" else "/usr/bin/python3"
    box = sandbox.choose(python, kinds=(kind,))
    assert box.kind == kind
    stage = open_dir / "stage"
    stage.mkdir()
    home = box.prepare(stage)
    cmd = box.command([box.python, "-c", PAYLOAD, str(stage), str(port)], stage=stage, home=home,
                      seconds=60, gpu=False)
    proc = sandbox.run_contained(cmd, timeout=180, env=box.environ(home), cwd=home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (seen["uid"], seen["gid"], seen["groups"]) == (65534, 65534, [])
    assert int(seen["caps"], 16) == 0 and seen["secret"] is None
    for attack in ("write_root", "write_stage", "read_shadow", "docker_sock", "network", "memory_8g", "fork_bomb"):
        assert seen[attack] != "done", (attack, seen)
    assert seen["memory_8g"] == "MemoryError" and seen["forks"] < sandbox.PROCESSES, seen
    assert seen["write_home"] == "done"
    assert accepted == [] and not Path("/envctl-sandbox-probe").exists() and not (stage / "planted").exists()
    for shared in ("/tmp", "/var/tmp", "/dev/shm"):  # bwrap's /tmp is its own: written, but not on the host
        assert not Path(f"{shared}/{open_dir.name}-planted").exists(), (shared, seen)
        assert kind == "bwrap" or seen["write" + shared] == "OSError", (shared, seen)  # read-only there


def test_the_fallback_refuses_an_interpreter_the_sandbox_user_cannot_reach(made_artifacts, artifact_env, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    (locked / "python").symlink_to("/usr/bin/python3")  # itself reachable; the folder of the link is not
    envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
           "--outputs", str(made_artifacts["inputs"]), env=artifact_env)
    env = {**artifact_env, "PATH": _only_util_linux(tmp_path)}
    result = envctl("compat", "run", "--python", str(locked / "python"), env=env)
    assert_one_line_error(result, 2, "uid 65534", f"cannot reach the interpreter {locked / 'python'}",
                          "is mode 0700")
    assert "apt-get install bubblewrap" in result.stderr and "--trust" in result.stderr
    assert json.loads(envctl("compat", "matrix", "--json", env=artifact_env).stdout)["cells"] == {}


def test_without_any_sandbox_artifacts_run_only_with_trust(made_artifacts, artifact_env, tmp_path):
    bare = tmp_path / "no-tools"
    bare.mkdir()
    env = {**artifact_env, "PATH": str(bare)}
    added = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                   "--python", sys.executable, env=env)
    assert_one_line_error(added, 2, "cannot sandbox the artifacts run by", "bwrap not found", "util-linux")
    assert "--trust" in added.stderr
    trusted = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                     "--python", sys.executable, "--trust", env=env)
    assert trusted.returncode == 0, trusted.stderr
    refused = envctl("compat", "run", "--python", sys.executable, env=env)
    assert_one_line_error(refused, 2, "cannot sandbox the artifacts run by")
    ran = envctl("compat", "run", "--python", sys.executable, "--trust", "--json", env=env)
    assert ran.returncode == 0 and json.loads(ran.stdout)[0]["status"] == "ok", ran.stderr


@pytest.mark.parametrize("kind", ["bwrap", "unshare"])
def test_compat_run_python_passes_inside_the_sandbox(kind, made_artifacts, artifact_env, tmp_path, open_dir,
                                                     request):
    if kind == "bwrap":
        python, env = sys.executable, dict(artifact_env)
    else:  # no bwrap on PATH, and a TMPDIR the sandbox user can pass for the staged copies
        python = request.getfixturevalue("reachable_python")
        env = {**artifact_env, "PATH": _only_util_linux(tmp_path), "TMPDIR": str(open_dir)}
    added = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                   "--python", python, env=env)  # the reference outputs are computed in the sandbox too
    assert added.returncode == 0, added.stderr
    ran = envctl("compat", "run", "--python", python, "--device", "cpu", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    (cell,) = json.loads(ran.stdout)
    assert cell["status"] == "ok" and cell["detail"] == "1 outputs within tolerance", cell


def test_bwrap_refuses_an_interpreter_in_a_folder_only_its_owner_may_enter(made_artifacts, artifact_env, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    (locked / "python").symlink_to(sys.executable)
    result = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                    "--python", str(locked / "python"), env=artifact_env)
    assert_one_line_error(result, 2, f"cannot reach the interpreter {locked / 'python'}", f"{locked} is mode 0700")
    assert f"chmod o+rx {locked}" in result.stderr


def test_a_reference_run_that_leaves_a_link_copies_nothing_through_it(made_artifacts, artifact_env, open_dir):
    planter = open_dir / "python"  # stands in for code in the artifact: a link where the outputs go
    planter.write_text('#!/bin/sh\n[ "$1" = -c ] && exit 1\nfor a; do out="$a"; done\n'
                       'ln -s /etc/shadow "$out"\nexit 0\n')
    planter.chmod(0o755)
    result = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                    "--python", str(planter), env=artifact_env)
    assert_one_line_error(result, 1, "no regular file of outputs", "nothing was registered")
    assert json.loads(envctl("artifacts", "list", "--json", env=artifact_env).stdout) == []


def _marked(marker: str) -> list[int]:
    """Every live process whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if entry.isdigit() and marker in cmdline and state != "Z":
            found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def spinning(tmp_path_factory) -> dict:
    """A scripted model whose forward never returns, its sample inputs and (never reached) outputs."""
    import torch

    class Spin(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            while bool(x.sum() > -1e30):  # finite inputs: never false
                x = x * 1.0
            return x

    folder = tmp_path_factory.mktemp("spinning")
    torch.jit.script(Spin()).save(folder / "spin.pt")
    torch.save((torch.ones(2, 2),), folder / "inputs.pt")
    return {"pt": folder / "spin.pt", "inputs": folder / "inputs.pt"}


@pytest.mark.parametrize("signum,mode", [(signal.SIGTERM, "bwrap"), (signal.SIGINT, "bwrap"),
                                         (signal.SIGTERM, "unshare"), (signal.SIGTERM, "trust")])
def test_a_signal_ends_the_spinning_model_and_every_process_of_the_run(spinning, artifact_env, tmp_path, open_dir,
                                                                       request, signum, mode):
    added = envctl("artifacts", "add", str(spinning["pt"]), "--inputs", str(spinning["inputs"]), "--outputs",
                   str(spinning["inputs"]), env=artifact_env)
    assert added.returncode == 0, added.stderr
    marker = str(open_dir)  # the run's staged folder is under TMPDIR: in every command line of it
    python, env = sys.executable, {**artifact_env, "TMPDIR": marker}
    if mode == "unshare":
        python, env["PATH"] = request.getfixturevalue("reachable_python"), _only_util_linux(tmp_path)
    proc = start_envctl("compat", "run", "--python", python, "--device", "cpu", "--timeout", "600",
                        *(["--trust"] if mode == "trust" else []), env=env)
    # the runner and its forked child (the one running forward) are both the interpreter
    wait_for(lambda: len([p for p in _marked(marker)
                          if Path(f"/proc/{p}/cmdline").read_bytes().startswith(python.encode())]) >= 2,
             timeout=120, interval=0.05)
    time.sleep(1)  # into forward's loop
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == (143 if signum == signal.SIGTERM else 130), err
    assert "Traceback" not in err
    deadline = time.monotonic() + 5
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(marker) == [], "processes of the run outlived envctl"
    assert list(Path(marker).iterdir()) == []  # the staged copies are gone too
