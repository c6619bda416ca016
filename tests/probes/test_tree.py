"""The layer seal (envctl/builder/seal_layer.py, run inside builds) and the probe's tree check,
on real folders: what a layer wrote is listed and clamped; every later change is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from envctl.build.layers import merge_manifests, parse_manifests, tree_hash

REPO = Path(__file__).resolve().parents[2]
SEAL = REPO / "envctl" / "builder" / "seal_layer.py"
EPOCH = 315532800
sys.path.insert(0, str(REPO / "envctl" / "probes"))
import probe_tree  # noqa: E402


def _seal(prefix: Path, index: int, name: str) -> None:
    subprocess.run([sys.executable, str(SEAL), str(prefix), str(index), name, str(EPOCH)], check=True,
                   capture_output=True)


def _env(tmp_path: Path) -> Path:
    prefix = tmp_path / "opt" / "envs" / "demo"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").write_text("#!python\n")
    _seal(prefix, 0, "venv")
    site = prefix / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "torch.py").write_text("VERSION = 1\n")
    (prefix / "bin" / "tool").symlink_to("python")
    _seal(prefix, 1, "torch")
    return prefix


def test_each_seal_lists_only_what_its_layer_wrote_and_clamps_times(tmp_path):
    prefix = _env(tmp_path)
    layers = prefix / ".envctl" / "layers"
    venv = json.loads((layers / "00-venv.json").read_text())
    torch = json.loads((layers / "01-torch.json").read_text())
    assert list(venv["files"]) == ["bin/python"]
    assert torch["files"]["bin/tool"] == "link:python"
    assert set(torch["files"]) == {"lib/site-packages/torch.py", "bin/tool"}
    for path in [prefix, prefix.parent, *prefix.rglob("*")]:
        assert os.lstat(path).st_mtime == EPOCH, path
    blobs = {p.name: p.read_bytes() for p in layers.iterdir()}
    assert tree_hash(merge_manifests(parse_manifests(blobs))) == probe_tree.tree_hash(
        probe_tree.read_manifests(str(prefix)))  # host and probe agree on the hash


def test_tree_check_passes_untouched_and_names_changed_added_removed(tmp_path):
    prefix = _env(tmp_path)
    expected = probe_tree.tree_hash(probe_tree.read_manifests(str(prefix)))
    ok = probe_tree.tree_check(str(prefix), expected)
    assert ok["status"] == "pass" and ok["details"]["files"] == 3
    (prefix / "lib" / "site-packages" / "torch.py").write_text("VERSION = 2\n")
    (prefix / "bin" / "python").unlink()
    (prefix / "lib" / "site-packages" / "extra.py").write_text("")
    bad = probe_tree.tree_check(str(prefix), expected)
    assert bad["status"] == "fail"
    assert bad["details"]["changed"] == ["lib/site-packages/torch.py"]
    assert bad["details"]["removed"] == ["bin/python"]
    assert bad["details"]["added"] == ["lib/site-packages/extra.py"]
    assert "changed lib/site-packages/torch.py" in bad["message"]


def test_edited_manifest_is_caught_by_the_label_hash(tmp_path):
    prefix = _env(tmp_path)
    expected = probe_tree.tree_hash(probe_tree.read_manifests(str(prefix)))
    manifest = prefix / ".envctl" / "layers" / "01-torch.json"
    data = json.loads(manifest.read_text())
    data["files"]["lib/site-packages/torch.py"] = "0" * 64
    manifest.write_text(json.dumps(data))
    result = probe_tree.tree_check(str(prefix), expected)
    assert result["status"] == "fail" and "manifests were changed" in result["message"]


def test_environment_without_manifests_is_skipped(tmp_path):
    assert probe_tree.tree_check(str(tmp_path))["status"] == "skip"
