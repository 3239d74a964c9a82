"""report.md, report.html and analysis.ipynb built from a hand-made trajectory with a real PNG."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt

from agent.notebook import write_notebook
from agent.records import DataFile, Header, Outcome, Step, Trajectory, file_sha256
from agent.report import write_report
from sandbox.result import CellError, DisplayItem, ExecutionResult

CSV = "region,price,units\n" + "\n".join(
    f"{r},{p},{u}"
    for r, p, u in [
        ("north", 10.5, 3),
        ("south", 12.0, 7),
        ("east", 9.75, 2),
        ("west", 14.25, 5),
        ("north", 11.0, 4),
        ("south", 13.5, 6),
        ("east", 10.0, 1),
        ("west", 15.0, 8),
        ("north", 12.5, 2),
        ("south", 11.25, 9),
    ]
)
LOAD_CODE = "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint(round(df['price'].mean(), 4))"
BROKEN_CODE = "print(df['revenue'].sum())"
CHART_CODE = "totals = (df['price'] * df['units']).groupby(df['region']).sum()\nprint(totals.sum())"
TRACEBACK = "Traceback (most recent call last):\n  Cell In[2], line 1\nKeyError: 'revenue'"
REPORT = """## Final Report
- The mean price is **11.975**.
- South sells the most units. <script>alert('pwned')</script>
<img src=x onerror="alert(1)">

![the chart](figures/fig_1.png) ![a secret](../secret.png)

@mean_price[11.975]
@top_region[south]"""
BAR_COLOUR = "#d62728"  # a red the browser test looks for in the screenshot


def make_png(path: Path) -> tuple[int, int]:
    """A real matplotlib bar chart saved as PNG; returns its pixel size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    ax.bar(["north", "south", "east", "west"], [100.5, 266.25, 29.5, 191.25], color=BAR_COLOUR)
    ax.set_title("Revenue by region")
    fig.savefig(path)
    plt.close(fig)
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def make_run(out_dir: Path, *, status: str = "report", report: str | None = REPORT) -> Trajectory:
    """A run folder (workspace CSV, a figure) and the trajectory of a four-turn run over it."""
    csv = out_dir / "workspace" / "sales.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text(CSV + "\n", encoding="utf-8")
    header = Header(
        question="Which region earns the most, and what is the mean price?",
        files=[
            DataFile(name="sales.csv", source="/data/sales.csv", sha256=file_sha256(csv), rows=10, columns=3)
        ],
        model="Qwen2.5-Coder-0.5B-Instruct-Q4_K_M",
        backend="llamacpp",
        version="0.1.0",
    )
    steps = _code_steps(out_dir)
    if report is not None:
        steps.append(Step(index=4, step_kind="report", model_text=report))
    outcome = Outcome(
        status=status,  # type: ignore[arg-type]
        report=report,
        answers={"mean_price": "11.975", "top_region": "south"} if report else {},
        turns=len(steps),
        wall_seconds=83.4,
        prompt_tokens=5120,
        completion_tokens=640,
        errors=1,
    )
    return Trajectory(header=header, steps=steps, outcome=outcome)


def _code_steps(out_dir: Path) -> list[Step]:
    """Load and print, a KeyError, then the fix that draws the chart."""
    width, height = make_png(out_dir / "figures" / "fig_1.png")
    description = "Figure with 1 axes; axes(title='Revenue by region', 4 bars/patches)"
    figure = DisplayItem(
        mime="image/png", path="figures/fig_1.png", width=width, height=height, description=description
    )
    error = CellError(ename="KeyError", evalue="'revenue'", traceback=TRACEBACK)
    fix = "There is no revenue column; I compute it from price and units."
    return [
        _step(1, "First I load the data and check the mean price.", LOAD_CODE, stdout="11.975\n"),
        _step(2, "Now the revenue.", BROKEN_CODE, error=error),
        _step(3, fix, CHART_CODE, stdout="587.5\n", displays=[figure]),
    ]


def _step(index: int, words: str, code: str, **execution: object) -> Step:
    text = f"{words}\n```python\n{code}\n```"
    return Step(
        index=index,
        step_kind="code",
        model_text=text,
        code=code,
        execution=ExecutionResult(code=code, **execution),
    )


@pytest.fixture
def run(tmp_path: Path) -> tuple[Trajectory, Path]:
    out_dir = tmp_path / "run"
    return make_run(out_dir), out_dir


def test_markdown_report_has_every_section(run: tuple[Trajectory, Path]) -> None:
    trajectory, out_dir = run
    md_path, _ = write_report(trajectory, out_dir)
    md = md_path.read_text(encoding="utf-8")
    assert md.startswith("# Analysis of sales.csv\n")
    assert "Which region earns the most" in md
    assert "Finished: the model wrote its final report after 4 turns." in md
    sha = trajectory.header.files[0].sha256[:12]
    assert f"| sales.csv | 10 × 3 | `{sha}` |" in md
    assert "The mean price is **11.975**." in md
    assert "<script>" not in md and "&lt;script>alert(" in md and "<img" not in md
    assert "| `mean_price` | 11.975 |" in md
    assert "KeyError: 'revenue' (fixed in turn 3)" in md
    assert f"### Turn 3\n\n```python\n{CHART_CODE}\n```\n\n```text\n587.5\n" in md  # what the cell printed
    caption = "Figure 1 (turn 3): Revenue by region — There is no revenue column; I compute it from price and units."
    links = re.findall(r"!\[" + re.escape(caption) + r"\]\(([^)]+)\)", md)
    assert links == ["figures/fig_1.png"] and (out_dir / links[0]).is_file()
    assert "Qwen2.5-Coder-0.5B-Instruct-Q4\\_K\\_M" in md and "1 min 23 s" in md and "5,120 prompt" in md


def test_html_is_self_contained_with_the_figure_embedded(run: tuple[Trajectory, Path]) -> None:
    trajectory, out_dir = run
    _, html_path = write_report(trajectory, out_dir)
    page = html_path.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    png = (out_dir / "figures" / "fig_1.png").read_bytes()
    assert base64.b64decode(sources[0].split(",", 1)[1]) == png
    assert not re.search(r"<(script|link|iframe)\b", page), "the page must load nothing and run nothing"
    assert "587.5" in page and "11.975" in page  # numbers the cells printed
    assert "<style>" in page and "Figure 1" in page


def test_model_text_is_escaped_and_cannot_reach_outside_files(run: tuple[Trajectory, Path]) -> None:
    trajectory, out_dir = run
    (out_dir.parent / "secret.png").write_bytes((out_dir / "figures" / "fig_1.png").read_bytes())
    _, html_path = write_report(trajectory, out_dir)
    page = html_path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(" in page and "<script>" not in page
    assert 'onerror="alert(1)"' not in page and "&lt;img src=x onerror=" in page
    assert "[image not in the run folder: a secret]" in page
    # the model's own link to the run's figure is embedded; ../secret.png is not
    assert page.count("data:image/png;base64,") == 2


def test_an_unclosed_fence_in_the_report_cannot_swallow_the_rest(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    trajectory = make_run(out_dir, report="## Final Report\nDone.\n```python\nprint('never closed')")
    md_path, _ = write_report(trajectory, out_dir)
    tokens = MarkdownIt("commonmark").parse(md_path.read_text(encoding="utf-8"))
    headings = [
        tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"
    ]
    assert headings[-3:] == ["Figures", "Steps", "Run"]


def test_report_headings_of_the_model_sit_under_key_findings(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    trajectory = make_run(out_dir, report="## Final Report\n# Summary\nAll good.\n## Details\nMore.")
    md_path, _ = write_report(trajectory, out_dir)
    md = md_path.read_text(encoding="utf-8")
    assert "\n### Summary\n" in md and "\n#### Details\n" in md and "Final Report" not in md


@pytest.mark.parametrize(
    ("status", "line"),
    [
        ("interrupted", "Interrupted after 3 turns"),
        ("max_turns", "Stopped at the turn limit (3 turns)"),
        ("error", "Stopped after 3 turns by a system fault."),
    ],
)
def test_a_run_cut_short_says_so_plainly(tmp_path: Path, status: str, line: str) -> None:
    out_dir = tmp_path / "run"
    trajectory = make_run(out_dir, status=status, report=None)
    md_path, html_path = write_report(trajectory, out_dir)
    md, page = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    assert line in md and line in page
    assert "did not write a final report" in md
    assert "## Answers" not in md
    assert 'class="status warn"' in page


def test_a_run_without_an_outcome_still_gets_a_report(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    trajectory = make_run(out_dir, report=None)
    trajectory.outcome = None
    md_path, _ = write_report(trajectory, out_dir)
    md = md_path.read_text(encoding="utf-8")
    assert "Unfinished: the run stopped after 3 turns" in md
    assert "| 2 | Now the revenue. | KeyError: 'revenue' (fixed in turn 3) |" in md


def test_notebook_holds_every_cell_with_its_outputs(run: tuple[Trajectory, Path]) -> None:
    trajectory, out_dir = run
    path = write_notebook(trajectory, out_dir)
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    cells = notebook.cells
    assert cells[0].cell_type == "markdown" and "Which region earns the most" in cells[0].source
    assert "workspace/" in cells[0].source and 'os.chdir("workspace")' in cells[1].source
    code = [c for c in cells if c.cell_type == "code" and c.execution_count]
    assert [c.source for c in code] == [LOAD_CODE, BROKEN_CODE, CHART_CODE]
    assert code[0].outputs[0] == {"output_type": "stream", "name": "stdout", "text": "11.975\n"}
    error = code[1].outputs[-1]
    assert (
        error.output_type == "error"
        and error.ename == "KeyError"
        and error.traceback[-1] == "KeyError: 'revenue'"
    )
    images = [o for o in code[2].outputs if o.output_type == "display_data"]
    png = (out_dir / "figures" / "fig_1.png").read_bytes()
    assert base64.b64decode(images[0].data["image/png"]) == png
    prose = [c.source for c in cells if c.cell_type == "markdown"]
    assert "There is no revenue column; I compute it from price and units." in prose
    assert prose[-1].startswith("## Final Report") and "The mean price is **11.975**." in prose[-1]
    assert "&lt;script>alert(" in prose[-1] and "<script>" not in prose[-1]
    assert json.loads(path.read_text(encoding="utf-8"))["nbformat"] == 4


def test_notebook_reruns_in_a_real_kernel_from_the_run_folder(run: tuple[Trajectory, Path]) -> None:
    """Open the notebook where it was written: its cells find the data and print what the run printed."""
    from jupyter_client.manager import start_new_kernel

    trajectory, out_dir = run
    notebook = nbformat.read(str(write_notebook(trajectory, out_dir)), as_version=4)
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(out_dir))
    try:
        printed = []
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            stdout: list[str] = []
            client.execute_interactive(
                cell.source, timeout=60, output_hook=lambda m, out=stdout: _collect(m, out)
            )
            printed.append("".join(stdout))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert printed[1] == "11.975\n"  # the first analysis cell, computed again by a real kernel
    assert printed[3] == "587.5\n"


def _collect(message: dict, out: list[str]) -> None:
    if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
        out.append(message["content"]["text"])


@pytest.mark.parametrize("form", ["absolute", "run-relative", "bare-name", "cwd-relative"])
def test_figures_are_found_however_the_sandbox_recorded_their_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    out_dir = tmp_path / "run"
    trajectory = make_run(out_dir)
    monkeypatch.chdir(tmp_path)
    figure = trajectory.steps[2].execution.displays[0]  # type: ignore[union-attr]
    figure.path = {
        "absolute": str(out_dir / "figures" / "fig_1.png"),
        "run-relative": "figures/fig_1.png",
        "bare-name": "fig_1.png",
        "cwd-relative": "run/figures/fig_1.png",
    }[form]
    md_path, html_path = write_report(trajectory, out_dir)
    assert "](figures/fig_1.png)" in md_path.read_text(encoding="utf-8")
    assert html_path.read_text(encoding="utf-8").count("data:image/png;base64,") == 2
    notebook = nbformat.read(str(write_notebook(trajectory, out_dir)), as_version=4)
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "data" in o]
    assert [o.data.get("image/png", "")[:8] for o in images] == ["iVBORw0K"]  # base64 of the PNG magic


def test_status_line_carries_the_fault_but_not_a_repeated_status(tmp_path: Path) -> None:
    from agent.report import status_line

    trajectory = make_run(tmp_path / "run", status="error", report=None)
    trajectory.outcome.detail = "llama.cpp server at 127.0.0.1:8080 is unreachable"  # type: ignore[union-attr]
    assert status_line(trajectory).endswith(
        "by a system fault. llama.cpp server at 127.0.0.1:8080 is unreachable."
    )
    trajectory.outcome.status, trajectory.outcome.detail = "interrupted", "interrupted"  # type: ignore[union-attr]
    assert status_line(trajectory) == "Interrupted after 3 turns (Ctrl-C or a termination signal)."


def test_a_run_that_failed_before_any_step_still_gets_all_three_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    header = Header(question="Anything?", model="m", backend="openai")
    outcome = Outcome(status="error", detail="the server at 127.0.0.1:9 refused the connection")
    trajectory = Trajectory(header=header, outcome=outcome)
    md_path, html_path = write_report(trajectory, out_dir)
    notebook = nbformat.read(str(write_notebook(trajectory, out_dir)), as_version=4)
    line = (
        "Stopped before its first turn by a system fault. the server at 127.0.0.1:9 refused the connection."
    )
    assert line in md_path.read_text(encoding="utf-8") and line in html_path.read_text(encoding="utf-8")
    assert "No steps were recorded." in html_path.read_text(encoding="utf-8")
    assert [c.cell_type for c in notebook.cells] == ["markdown", "code", "markdown"]


def test_missing_figures_and_html_tables_are_reported_not_fatal(run: tuple[Trajectory, Path]) -> None:
    trajectory, out_dir = run
    execution = trajectory.steps[2].execution
    assert execution is not None
    execution.displays.append(DisplayItem(mime="text/html", text="<table><tr><td>587.5</td></tr></table>"))
    (out_dir / "figures" / "fig_1.png").unlink()
    _, html_path = write_report(trajectory, out_dir)
    assert "[figure file missing: figures/fig_1.png]" in html_path.read_text(encoding="utf-8")
    notebook = nbformat.read(str(write_notebook(trajectory, out_dir)), as_version=4)
    outputs = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "display_data"
    ]
    assert outputs[0].data == {"text/plain": "[figure file missing: figures/fig_1.png]"}
    assert outputs[1].data == {"text/html": "<table><tr><td>587.5</td></tr></table>"}


def test_backticks_in_code_or_output_cannot_break_report_md(run: tuple[Trajectory, Path]) -> None:
    trajectory, out_dir = run
    execution = trajectory.steps[0].execution
    assert execution is not None
    execution.stdout = "```\n# Injected heading\n```"
    md_path, _ = write_report(trajectory, out_dir)
    tokens = MarkdownIt("commonmark").parse(md_path.read_text(encoding="utf-8"))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert "Injected heading" not in headings and "Run" in headings
    assert any(t.type == "fence" and "# Injected heading" in t.content for t in tokens)
