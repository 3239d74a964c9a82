"""The run as ``analysis.ipynb``: every executed cell with the outputs it really produced.

The notebook is written next to the report in the run folder. The run's cells read the data files by
plain name from ``workspace/``, so a setup cell moves into that folder first; opened from anywhere
else, the notebook should be run from inside the run's ``workspace/`` folder.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from agent.records import Step, Trajectory
from agent.report import escape_raw_html, prose, report_body, resolve_figure, status_line, title
from sandbox.result import ExecutionResult

SETUP_CODE = """\
# The analysis reads its data files by plain name from the run's workspace/ folder.
import os

if os.path.isdir("workspace"):
    os.chdir("workspace")"""


def build_notebook(trajectory: Trajectory, out_dir: Path) -> Any:
    """The notebook object: question, setup, then the model's prose and code turn by turn, then the report."""
    import nbformat.v4 as nbf

    cells = [
        nbf.new_markdown_cell(_intro(trajectory), id="question"),
        nbf.new_code_cell(SETUP_CODE, id="setup"),
    ]
    for step in trajectory.steps:
        cells.extend(_step_cells(step, out_dir))
    cells.append(nbf.new_markdown_cell(_closing(trajectory), id="final-report"))
    metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "analyst": {"model": trajectory.header.model, "backend": trajectory.header.backend},
    }
    return nbf.new_notebook(cells=cells, metadata=metadata)


def write_notebook(trajectory: Trajectory, out_dir: Path) -> Path:
    """Write analysis.ipynb into the run folder (validated against the nbformat schema)."""
    import nbformat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = build_notebook(trajectory, out_dir)
    nbformat.validate(notebook)
    path = out_dir / "analysis.ipynb"
    nbformat.write(notebook, str(path))
    return path


def _intro(trajectory: Trajectory) -> str:
    header = trajectory.header
    names = ", ".join(f"`{f.name}`" for f in header.files) or "none"
    return (
        f"# {title(trajectory)}\n\n**Question:** {header.question.strip()}\n\n"
        f"Data files: {names}. Recorded by the analyst agent ({header.model}, {header.backend} backend); "
        "the outputs below are the ones the run produced.\n\n"
        "To re-run it, open this notebook from the run folder (the next cell moves into `workspace/`, "
        "where the run copied the data files) or run it from inside that `workspace/` folder."
    )


def _closing(trajectory: Trajectory) -> str:
    outcome = trajectory.outcome
    body = escape_raw_html(report_body(outcome.report if outcome else None))
    body = body or "_The model did not write a final report._"
    return f"## Final Report\n\n{body}\n\n---\n*{status_line(trajectory)}*"


def _step_cells(step: Step, out_dir: Path) -> list[Any]:
    """A turn as cells: the model's words (markdown) then the code it ran with its outputs."""
    import nbformat.v4 as nbf

    cells = []
    # the model's words are untrusted: shown as text, never as live HTML
    words = escape_raw_html(prose(step.model_text))
    if words and step.step_kind != "report":
        cells.append(nbf.new_markdown_cell(words, id=f"turn-{step.index}-text"))
    code = step.code or (step.execution.code if step.execution else "")
    if code:
        cell = nbf.new_code_cell(code, id=f"turn-{step.index}-code", execution_count=step.index)
        if step.execution is not None:
            cell.outputs = execution_outputs(step.execution, out_dir, step.index)
        cells.append(cell)
    return cells


def execution_outputs(execution: ExecutionResult, out_dir: Path, count: int) -> list[Any]:
    """Jupyter outputs for one recorded cell: streams, displays, result, then the error."""
    import nbformat.v4 as nbf

    outputs = []
    if execution.stdout:
        outputs.append(nbf.new_output("stream", name="stdout", text=execution.stdout))
    stderr = execution.stderr + "".join(f"[{note}]\n" for note in execution.notes)
    if execution.timed_out:
        stderr += f"[the cell timed out after {execution.duration:.0f} s and was interrupted]\n"
    if execution.kernel_restarted:
        stderr += "[the kernel died during this cell and was restarted]\n"
    if stderr:
        outputs.append(nbf.new_output("stream", name="stderr", text=stderr))
    for item in execution.displays:
        data = _display_data(item.mime, item.path, item.text, out_dir)
        if data:
            outputs.append(nbf.new_output("display_data", data=data))
    if execution.result is not None:
        outputs.append(
            nbf.new_output("execute_result", data={"text/plain": execution.result}, execution_count=count)
        )
    if execution.error is not None:
        error = execution.error
        traceback = error.traceback.splitlines() or [f"{error.ename}: {error.evalue}"]
        outputs.append(nbf.new_output("error", ename=error.ename, evalue=error.evalue, traceback=traceback))
    return outputs


def _display_data(mime: str, path: str | None, text: str | None, out_dir: Path) -> dict[str, str]:
    """A display's mime bundle: a saved figure as base64, or the text the kernel sent."""
    if path and mime.startswith("image/"):
        file = resolve_figure(path, out_dir)
        if not file.is_file():
            return {"text/plain": f"[figure file missing: {path}]"}
        if mime == "image/svg+xml":
            return {mime: file.read_text(encoding="utf-8"), "text/plain": f"<Figure {file.name}>"}
        return {
            mime: base64.b64encode(file.read_bytes()).decode("ascii"),
            "text/plain": f"<Figure {file.name}>",
        }
    if text is not None:
        return {mime: text}
    return {}
