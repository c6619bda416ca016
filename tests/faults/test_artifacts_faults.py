"""Items 5, 6, 10 and 12 for the artifact store: right verdicts or none, whole registrations or none,
capped archive reads, and one-line answers for files that are not files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from tests.faults.conftest import assert_one_line_error, envctl


def _add(made, env, *extra):
    result = envctl("artifacts", "add", str(made["pt"]), "--inputs", str(made["inputs"]), *extra, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(envctl("artifacts", "list", "--json", env=env).stdout)[0]


def _listing(env) -> list:
    return json.loads(envctl("artifacts", "list", "--json", env=env).stdout)


def _store_entries(env) -> list:
    store = Path(env["ENVCTL_ARTIFACTS"])
    return sorted(p.name for p in store.iterdir()) if store.exists() else []


@pytest.mark.parametrize("damage", ["swap", "delete"])
def test_a_swapped_or_deleted_stored_file_gets_no_verdict(made_artifacts, artifact_env, damage):
    art = _add(made_artifacts, artifact_env, "--python", sys.executable)
    stored = Path(artifact_env["ENVCTL_ARTIFACTS"]) / art["sha256"] / "artifact.pt"
    if damage == "swap":
        stored.write_bytes(made_artifacts["pt2"].read_bytes())
    else:
        stored.unlink()
    result = envctl("compat", "run", "--python", sys.executable, env=artifact_env)
    assert_one_line_error(result, 2, str(stored), "the store was altered")
    assert json.loads(envctl("compat", "matrix", "--json", env=artifact_env).stdout)["cells"] == {}


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_nonsensical_timeouts_are_refused(artifact_env, value):
    assert_one_line_error(envctl("compat", "run", "--python", sys.executable, "--timeout", value,
                                 env=artifact_env), 2, f"--timeout {float(value)}")


def test_garbage_outputs_are_refused_at_add_and_a_bare_tensor_reference_compares(made_artifacts, artifact_env,
                                                                                  tmp_path):
    import torch

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x1b[31mred\x1b[0m" * 10)
    assert_one_line_error(envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs",
                                 str(made_artifacts["inputs"]), "--outputs", str(garbage), env=artifact_env),
                          2, str(garbage), "not a torch.save file")
    assert _listing(artifact_env) == []
    (x,) = torch.load(made_artifacts["inputs"])
    bare = tmp_path / "bare.pt"
    torch.save(x * 2 + 1, bare)  # the reference as one tensor, not a list
    envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
           "--outputs", str(bare), env=artifact_env)
    result = envctl("compat", "run", "--python", sys.executable, "--json", env=artifact_env)
    assert json.loads(result.stdout)[0]["status"] == "ok", result.stdout


def test_a_failed_reference_run_registers_nothing(made_artifacts, artifact_env, tmp_path):
    failing = tmp_path / "bin" / "python"  # in a folder the sandbox user may enter
    failing.parent.mkdir(mode=0o755)
    failing.write_text("#!/bin/sh\necho 'RuntimeError: \x1b[31mout of memory\x1b[0m'\nexit 1\n")
    failing.chmod(0o755)
    result = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                    "--python", str(failing), env=artifact_env)
    line = assert_one_line_error(result, 1, "nothing was registered")
    assert "\x1b" not in line
    assert _listing(artifact_env) == [] and _store_entries(artifact_env) == []
    art = _add(made_artifacts, artifact_env, "--python", sys.executable)  # a re-run is a real add
    assert art["info"]["outputs"] == "outputs.pt"


def test_a_reference_run_that_fails_in_the_runner_says_why_in_one_line(made_artifacts, artifact_env, tmp_path):
    import torch

    (x,) = torch.load(made_artifacts["inputs"])
    two = tmp_path / "two.inputs.pt"
    torch.save((x, x), two)  # forward takes one tensor: the run fails inside the runner
    result = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(two),
                    "--python", sys.executable, env=artifact_env)
    line = assert_one_line_error(result, 1, "cannot compute reference outputs of double", "run-error: RuntimeError",
                                 "nothing was registered")
    assert "{" not in line and '"status"' not in line, line
    assert _listing(artifact_env) == []


def test_a_hanging_reference_run_ends_at_the_timeout(made_artifacts, artifact_env, tmp_path):
    hang = tmp_path / "bin" / "python"  # in a folder the sandbox user may enter
    hang.parent.mkdir(mode=0o755)
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    started = time.monotonic()
    # 1 s per artifact plus 30 s for the start at most
    result = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                    "--python", str(hang), "--timeout", "1", env=artifact_env, timeout=200)
    assert time.monotonic() - started < 60
    assert_one_line_error(result, 1, "no answer within 31s")
    assert _listing(artifact_env) == []


def test_parallel_adds_of_one_file_make_one_registration(made_artifacts, artifact_env):
    procs = [subprocess.Popen([sys.executable, "-m", "envctl", "artifacts", "add", str(made_artifacts["pt"])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**__import__("os").environ, **artifact_env}) for _ in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err, err
    assert len(_listing(artifact_env)) == 1
    assert [n for n in _store_entries(artifact_env) if n.startswith(".")] == []


def test_a_leftover_store_folder_does_not_block_a_later_add(made_artifacts, artifact_env):
    from envctl.fsio import sha256_of
    leftover = Path(artifact_env["ENVCTL_ARTIFACTS"]) / sha256_of(made_artifacts["pt"])
    leftover.mkdir(parents=True)
    (leftover / "artifact.pt").write_text("half")
    _add(made_artifacts, artifact_env)
    assert (leftover / "artifact.pt").read_bytes() == made_artifacts["pt"].read_bytes()


def test_a_zip_bomb_is_refused_without_inflating_it(artifact_env, tmp_path):
    bomb = tmp_path / "bomb.pt2"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/archive_format", "pt2")
        with zf.open("bomb/models/model.json", "w", force_zip64=True) as fh:
            chunk = b" " * (1 << 20)
            for _ in range(200):
                fh.write(chunk)
    assert bomb.stat().st_size < 2 << 20
    started = time.monotonic()
    assert_one_line_error(envctl("artifacts", "add", str(bomb), env=artifact_env), 2, "bomb/models/model.json")
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("target,needle", [("folder", "is a folder"), ("/dev/zero", "not a regular file"),
                                           ("/dev/stdin", "not a regular file")])
def test_paths_that_are_not_files_are_named_for_what_they_are(artifact_env, tmp_path, target, needle):
    path = tmp_path if target == "folder" else target
    assert_one_line_error(envctl("artifacts", "add", str(path), env=artifact_env, input=""), 2, needle)


def _patched(path: Path, members: dict[str, str], patch: Callable[[bytearray, zipfile.ZipFile], None],
             compression: int = zipfile.ZIP_STORED) -> Path:
    """A zip of ``members`` whose bytes ``patch`` then changes, as a forger (or a bad disk) would."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        patch(data, zf)
    path.write_bytes(bytes(data))
    return path


def _set_header_field(offsets: dict[bytes, int], value: int, *, bit: bool = False):
    """Every local and central header's field at ``offsets[signature]``: a compression method, or
    the flags word's bit 0 (encrypted)."""
    def patch(data: bytearray, _zf) -> None:
        for signature, offset in offsets.items():
            at = data.find(signature)
            while at >= 0:
                data[at + offset] = data[at + offset] | value if bit else value
                at = data.find(signature, at + 4)
    return patch


def _corrupt_deflate(data: bytearray, zf: zipfile.ZipFile) -> None:
    info = zf.getinfo("m/models/model.json")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra)] = 0x07  # reserved block type


EXPORT = {"m/archive_format": "pt2", "m/models/model.json": '{"torch_version": "2.13.0"}'}
AOTI = "m/data/aotinductor/model/x_wrapper_metadata.json"
NOTHING = lambda data, zf: None  # noqa: E731 - the members alone are the fault

DAMAGED_ARCHIVES = {  # id -> (members, byte patch, compression), what the one line says
    "model-json-list": ({**EXPORT, "m/models/model.json": "[1, 2]"}, NOTHING, zipfile.ZIP_STORED,
                        "m/models/model.json is not a JSON object"),
    "model-json-null": ({**EXPORT, "m/models/model.json": "null"}, NOTHING, zipfile.ZIP_STORED,
                        "m/models/model.json is not a JSON object"),
    "model-json-deep": ({**EXPORT, "m/models/model.json": "[" * 100_000 + "]" * 100_000}, NOTHING,
                        zipfile.ZIP_DEFLATED, "m/models/model.json is not a JSON object"),
    "schema-version-number": ({**EXPORT, "m/models/model.json": '{"schema_version": 5}'}, NOTHING,
                              zipfile.ZIP_STORED, "has a schema_version that is not a JSON object"),
    "torch-version-list": ({**EXPORT, "m/models/model.json": '{"torch_version": [2, 13]}'}, NOTHING,
                           zipfile.ZIP_STORED, "has a torch_version that is not a string"),
    "aoti-metadata-list": ({AOTI: "[1]", "m/data/aotinductor/model/x.so": "elf"}, NOTHING, zipfile.ZIP_STORED,
                           f"{AOTI} is not a JSON object"),
    "aoti-metadata-null": ({AOTI: "null"}, NOTHING, zipfile.ZIP_STORED, f"{AOTI} is not a JSON object"),
    "encrypted-member": (EXPORT, _set_header_field({b"PK\x03\x04": 6, b"PK\x01\x02": 8}, 1, bit=True),
                         zipfile.ZIP_STORED, "is encrypted"),
    "unsupported-compression": (EXPORT, _set_header_field({b"PK\x03\x04": 8, b"PK\x01\x02": 10}, 97),
                                zipfile.ZIP_STORED, "compression method is not supported"),
    "corrupt-deflate": ({**EXPORT, "m/models/model.json": '{"a": "' + "x" * 3000 + '"}'}, _corrupt_deflate,
                        zipfile.ZIP_DEFLATED, "m/models/model.json cannot be read (Error -3"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_ARCHIVES))
def test_a_forged_or_damaged_archive_is_one_line_and_registers_nothing(artifact_env, tmp_path, case):
    """#22 item 7: model.json or AOT metadata a list or null, encrypted members, unsupported
    compression and corrupt deflate each ended in a traceback."""
    members, patch, compression, needle = DAMAGED_ARCHIVES[case]
    archive = _patched(tmp_path / f"{case}.pt2", members, patch, compression)
    assert_one_line_error(envctl("artifacts", "add", str(archive), env=artifact_env), 2, needle)
    assert _store_entries(artifact_env) == []
