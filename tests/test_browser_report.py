"""report.html opened in real headless chromium: the embedded charts load and are visible.

Needs Debian's chromium (``apt-get install -y chromium``); skipped, saying so, when it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.report import write_report
from tests.test_report import BAR_COLOUR, REPORT, make_run

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless chromium is not installed (Debian: apt-get install -y chromium)"
)

# Appended to a copy of the page only: the report itself has no script. After load it writes each
# image's decoded size into a body attribute that --dump-dom then shows.
PROBE = """<script>
window.addEventListener("load", () => {
  const sizes = Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  document.body.setAttribute("data-images", JSON.stringify(sizes));
});
</script>"""


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless chromium with everything that could reach a network or the GPU turned off."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@needs_chromium
def test_every_embedded_chart_decodes_in_the_browser(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    trajectory = make_run(out_dir)
    _, html_path = write_report(trajectory, out_dir)
    # opened away from the run folder, so only what the page itself carries can show
    probe = tmp_path / "elsewhere" / "probe.html"
    probe.parent.mkdir()
    probe.write_text(
        html_path.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    done = chromium(
        tmp_path / "profile",
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    )
    match = re.search(r'data-images="([^"]*)"', done.stdout)
    assert match, f"the page did not finish loading:\n{done.stderr[-2000:]}"
    sizes = json.loads(match.group(1).replace("&quot;", '"'))
    figure = trajectory.steps[2].execution.displays[0]  # type: ignore[union-attr]
    # two images: the model's own link to the figure (inside the run folder) and the Figures section
    assert sizes == [[True, figure.width, figure.height]] * 2


@needs_chromium
def test_screenshot_shows_the_chart(tmp_path: Path) -> None:
    from PIL import Image

    out_dir = tmp_path / "run"
    # without the model's inline copy of the chart, so the page shows it exactly once
    report = REPORT.replace("![the chart](figures/fig_1.png)", "")
    _, html_path = write_report(make_run(out_dir, report=report), out_dir)
    alone = tmp_path / "elsewhere" / "report.html"
    alone.parent.mkdir()
    alone.write_bytes(html_path.read_bytes())
    shot = tmp_path / "report.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2600", alone.as_uri())
    with Image.open(shot) as image:
        pixels = image.convert("RGB")
        width, height = pixels.size
        bar = tuple(int(BAR_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
        rows_with_bars = [y for y in range(0, height, 4) if _has_colour(pixels, y, width, bar)]
        colours = len(pixels.getcolors(maxcolors=1 << 16) or [])
    assert colours > 50, "the screenshot looks blank"
    assert rows_with_bars, "no pixel of the chart's bar colour is visible"
    # the bars sit in the figure's band of the page, not smeared across the whole screenshot
    assert 300 < rows_with_bars[0] and rows_with_bars[-1] - rows_with_bars[0] < 700


def _has_colour(pixels: object, y: int, width: int, colour: tuple[int, ...]) -> bool:
    get = pixels.getpixel  # type: ignore[attr-defined]
    return any(
        all(abs(a - b) <= 6 for a, b in zip(get((x, y)), colour, strict=True)) for x in range(0, width, 3)
    )
