"""The benchmark page (envctl/bench/html.py) on real probe documents: laid out by a real headless
Chromium, no label or figure is clipped, at a wide and a narrow window; and the page names each
run's image, torch and CUDA versions, GPU or CPU, host state and when it was made."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from envctl.bench import compare, load_runs
from envctl.bench.html import render_html, run_facts
from envctl.records import Records

REPO = Path(__file__).resolve().parent.parent
GATE = REPO / "tests" / "data" / "gate"  # two quick H100 runs of one environment
CPU_GATE = REPO / "benchmarks" / "results" / "gate" / "cpu"  # 2-core CPU runs, quiet and beside spinners
LONG_MODE = "compile-max-autotune-no-cudagraphs-with-a-custom-backend-and-a-long-name"

# Injected into a copy of the page (the page itself has no script): what the browser's layout
# hides or pushes out of view, one line each.
LAYOUT_CHECK = """
const problems = [];
const page = document.documentElement;
if (page.scrollWidth > page.clientWidth) {
  problems.push(`the page is ${page.scrollWidth}px wide in a ${page.clientWidth}px window`);
}
for (const svg of document.querySelectorAll('svg')) {
  const box = svg.getBoundingClientRect();
  for (const t of svg.querySelectorAll('text')) {
    const r = t.getBoundingClientRect();
    if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) {
      const [from, to] = [r.left - box.left, r.right - box.left].map(Math.round);
      problems.push(`SVG text "${t.textContent}" spans ${from}..${to}px of its ${Math.round(box.width)}px box`);
    }
  }
}
for (const el of document.body.querySelectorAll('*')) {
  if (el.closest('svg') || !el.textContent.trim()) continue;
  if (el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > page.clientWidth + 0.5) {
    problems.push(`<${el.tagName.toLowerCase()}> "${el.textContent.slice(0, 60)}" overflows its box or the window`);
  }
}
const out = document.createElement('pre');
out.id = 'layout-problems';
out.textContent = JSON.stringify(problems);
document.body.appendChild(out);
"""


def layout_problems(page: str, folder: Path, *, width: int) -> list[str]:
    """What a real Chromium, ``width`` pixels wide, clips or pushes out of view on ``page``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:  # never a skip: the layout would go unchecked
        pytest.fail("no chromium on PATH to lay out the page: apt-get install chromium (scripts/test.sh does)",
                    pytrace=False)
    path = folder / f"page-{width}.html"
    path.write_text(page.replace("</body>", f"<script>{LAYOUT_CHECK}</script></body>"))
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},900", "--dump-dom", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="layout-problems">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def _with_long_mode(src: Path, dest: Path) -> Path:
    """The real document with its compile-default rows renamed to a long mode name."""
    doc = json.loads(src.read_text())
    for row in doc["benchmarks"]:
        if row.get("mode") == "compile-default":
            row["mode"] = LONG_MODE
    dest.write_text(json.dumps(doc))
    return dest


@pytest.mark.parametrize("width", [1280, 640])
def test_no_label_is_clipped_in_a_real_browser(tmp_path, width):
    long_name = tmp_path / "an-h100-run-of-the-nightly-gate-with-a-long-file-name-std-1.json"
    a = load_runs(str(_with_long_mode(GATE / "std-1.json", long_name)))
    b = load_runs(str(_with_long_mode(GATE / "std-2.json", tmp_path / "std-2.json")))
    page = render_html(a + b, compare(a, b), title=f"{a[0].label} vs {b[0].label}")
    assert f"{LONG_MODE} (1)" in page
    assert layout_problems(page, tmp_path, width=width) == []
    shown = render_html([load_runs(str(CPU_GATE / f"spinning-{i}.json"))[0] for i in (1, 2, 3)])
    assert layout_problems(shown, tmp_path, width=width) == []


def test_the_page_names_image_versions_device_host_state_and_time_of_each_run(tmp_path):
    records = Records(tmp_path / "records.db")
    h100 = json.loads((GATE / "std-1.json").read_text())
    rec = records.add_run(kind="verify", image="pytorch-2.11-cu130", image_id="sha256:0123456789abcdef0123",
                          ok=True, started=1796580990.0, document=h100)
    page = render_html([load_runs(f"#{rec}", records=records)[0],
                        load_runs(str(CPU_GATE / "spinning-1.json"))[0]])
    facts = re.search(r"<table class='runs'>.*?</table>", page, re.S).group(0)
    # the recorded H100 run: its image and id, versions, GPU, a quiet host, when its record began
    for text in ("pytorch-2.11-cu130 (0123456789ab)", "2.11.0+cu130", "13.0, driver 580.159.04",
                 "NVIDIA H100 80GB HBM3, probe on cuda:0, level quick",
                 "quiet: other processes used 0.71 of 16 CPU cores; host speed 3.02 -&gt; 3.41 us per torch op",
                 "2026-12-06 18:16:30 UTC"):
        assert text in facts, text
    # the CPU run from a file: no image to name (and it says so), the CPU, a contended host, the
    # probe's own first sample as its time
    cpu = json.loads((CPU_GATE / "spinning-1.json").read_text())
    machine = cpu["machine"]
    for text in ("not named in the document", cpu["env"]["torch"]["version"], "none (CPU build)",
                 f"CPU ({cpu['env']['platform']['cpu_count']} cores), probe on cpu",
                 f"contended: other processes used {machine['other_cpu_cores']:.2f} of {machine['cores']} CPU cores",
                 f"host speed {machine['before']['host']['torch_op_us']:.2f} -&gt; "):
        assert text in facts, text
    assert re.search(r"<td>20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC</td></tr></table>", facts)


def test_a_document_saved_by_verify_names_its_image(tmp_path):
    doc = json.loads((GATE / "std-2.json").read_text())
    doc["image"] = {"name": "pytorch-2.11-cu130", "id": "sha256:fedcba9876543210fedc"}  # as verify --json writes
    (tmp_path / "run.json").write_text(json.dumps(doc))
    [run] = load_runs(str(tmp_path / "run.json"))
    assert run_facts(run)[0] == ("image", "pytorch-2.11-cu130 (fedcba987654)")
