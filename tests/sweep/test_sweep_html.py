"""The matrix dashboard: what each cell says, the speedup view, and the page as a real browser
(Debian's chromium, headless) draws it: a green, a red and a grey cell on the screenshot."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from envctl.sweep.html import COLORS, render_dashboard
from envctl.sweep.plan import Cell, Combo

CELLS = [
    Cell(Combo("2.14", "cu130"), "verified", "27 checks passed, 8 benchmark rows", None, "sha256:a", "sha256:s",
         "3.12", 5_210_000_000, 2.0, 1450.0, 61.0,
         {"torch": "2.14.0", "cuda": "13.0.3", "cudnn": "9.24.0.43", "nccl": "2.30.7", "triton": "3.8.0"},
         {"compile-default": 1.42}),
    Cell(Combo("2.13", "cu130"), "failed", "cudnn: cuDNN runtime 9.1 does not match compile-time 9.2",
         "cuDNN differs from torch's build", "sha256:b", "sha256:t", "3.12", 5_000_000_000, 1.0, 1300.0, 40.0,
         {"cuda": "13.0.2", "cudnn": "9.20.0.48", "nccl": "2.29.7", "triton": "3.7.1"}),
    Cell(Combo("2.13", "cpu"), "verified", "27 checks passed", None, "sha256:c", "sha256:u", "3.11", 1_410_000_000,
         0.0, 0.0, 68.0, {"torch": "2.13.0+cpu"}, {"compile-default": 0.37}),
    Cell(Combo("2.12", "cu130"), "grey", "pytorch-2.12-cu130 is a real PyTorch combination (stable) but the catalog "
         "has no images/pytorch-2.12-cu130.yaml", "no spec"),
]


def test_each_cell_says_its_state_reason_size_times_and_versions():
    page = render_dashboard(CELLS, note="a test")
    assert '<td class="cell verified" style="background:#1a7f37" title="27 checks passed, 8 benchmark rows">' in page
    assert ("<span class=\"facts\">5.21 GB \u00b7 build 1450s \u00b7 verify 61s \u00b7 Python 3.12<br>torch 2.14.0, "
            "cuda 13.0.3, cudnn 9.24.0.43, nccl 2.30.7, triton 3.8.0</span>") in page
    assert "<span class=\"state\">failed: cuDNN differs from torch&#x27;s build</span>" in page
    assert "<span class=\"state\">no spec</span>" in page
    assert page.index("<th>torch 2.14</th>") < page.index("<th>torch 2.13</th>") < page.index("<th>torch 2.12</th>")
    assert "<th>cpu</th><th>cu130</th>" in page  # cpu first; one Python and target: not in the headings
    assert "<td class=\"empty\">-</td>" in page  # 2.14 cpu was not in the sweep
    assert "<li>cuDNN differs from torch&#x27;s build: 1</li><li>no spec: 1</li>" in page


def test_a_cell_verified_on_a_fleet_target_says_where_and_on_which_node():
    from envctl.sweep.plan import cell_from_document

    there = Cell(Combo("2.14", "cu130", target="h100"), "verified", "27 checks passed", None, "sha256:a",
                 "sha256:s", "3.12", 5_210_000_000, 2.0, 1450.0, 61.0, {}, {"compile-default": 1.5}, node="gpu-node-7")
    assert cell_from_document(there.document()).node == "gpu-node-7"  # kept in the record
    page = render_dashboard([there], target="h100")
    assert "<span class=\"facts\">on h100 (gpu-node-7) \u00b7 5.21 GB \u00b7 build 1450s" in page
    assert "on h100.</p>" in page and "1.50x" in page  # the speedup view of that target
    assert "on h100" not in render_dashboard(CELLS)  # local cells name no target


def test_nothing_a_record_holds_reaches_the_page_as_markup():
    """`matrix report` draws cells from the records, which anyone with the file can edit."""
    forged = Cell(Combo("2.13", "cpu"), "failed", "<img src=x onerror=alert(1)>", "<b>class</b>", "sha256:c",
                  "sha256:u", "<script>alert(1)</script>", 1, 0.0, 0.0, 1.0, {"torch": "<script>x</script>"})
    page = render_dashboard([forged], title="t")
    assert "<script>" not in page and "<img" not in page and "<b>class" not in page
    assert "Python &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_speedup_view_is_one_targets_verified_releases_oldest_first():
    page = render_dashboard(CELLS)
    view = page.split("torch.compile speedups across releases")[1]
    assert view.index("pytorch-2.13-cpu") < view.index("pytorch-2.14-cu130")
    assert "pytorch-2.13-cu130" not in view  # failed: no speedups shown
    assert "1.42x" in view and "0.37x" in view
    assert "No compile speedups recorded on gpu-a100 yet" in render_dashboard(CELLS, target="gpu-a100")


def _pixels(png: bytes) -> set[tuple[int, int, int]]:
    """The colours of an 8-bit RGB or RGBA PNG, non-interlaced (what chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            data += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(data), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return {tuple(row[x:x + 3]) for row in rows for x in range(0, stride, channels)}


def test_a_real_browser_draws_green_red_and_grey_cells(tmp_path: Path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium (scripts/test.sh does)",
                    pytrace=False)
    page = tmp_path / "index.html"
    page.write_text(render_dashboard(CELLS))
    shot = tmp_path / "shot.png"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--window-size=1200,800", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    colours = _pixels(shot.read_bytes())
    for state, hex_colour in COLORS.items():
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, f"no {state} cell ({hex_colour}) drawn"
