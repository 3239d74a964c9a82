"""`analyst replay`: a recorded trajectory printed for a person."""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax

from agent.records import Trajectory

SHORT_LINES = 15


def print_trajectory(trajectory: Trajectory, full: bool = False, console: Console | None = None) -> None:
    """Header, each turn (prose, code, output) and the outcome."""
    console = console or Console()
    header = trajectory.header
    files = ", ".join(f"{f.name} ({f.rows} rows, sha256 {f.sha256[:12]})" for f in header.files)
    console.print(
        Panel(
            f"[bold]{header.question}[/]\nfiles: {files}\nmodel: {header.model} via {header.backend}"
            f"  started {header.started_at}  analyst {header.version}",
            title="trajectory",
        )
    )
    for step in trajectory.steps:
        console.rule(
            f"turn {step.index} · {step.step_kind} · {step.completion_tokens} tokens "
            f"· {step.generation_seconds:.1f}s + {step.execution_seconds:.1f}s",
            align="left",
        )
        prose = step.model_text if step.code is None else _without_code(step.model_text)
        if prose.strip():
            console.print(Markdown(prose))
        if step.code:
            console.print(Syntax(step.code, "python", theme="ansi_dark", background_color="default"))
        if step.execution is not None:
            text = step.execution.observation(0 if full else 4000)
            lines = text.splitlines()
            if not full and len(lines) > SHORT_LINES:
                text = "\n".join(lines[:SHORT_LINES]) + f"\n… {len(lines) - SHORT_LINES} more lines (--full)"
            console.print(text, style="green" if step.execution.ok else "red", markup=False, highlight=False)
        elif step.observation and step.step_kind != "report":
            console.print(step.observation, style="yellow", markup=False)
    outcome = trajectory.outcome
    if outcome is None:
        console.print("[red]no outcome recorded: the run was cut off before it ended[/]")
        return
    answers = "  ".join(f"{k}={v}" for k, v in outcome.answers.items())
    console.print(
        Panel(
            f"status: [bold]{outcome.status}[/]  turns: {outcome.turns}  "
            f"time: {outcome.wall_seconds:.0f}s  tokens: {outcome.completion_tokens}\n{answers}".rstrip(),
            title="outcome",
        )
    )


def _without_code(text: str) -> str:
    import re

    return re.sub(r"```.*?(```|\Z)", "", text, flags=re.DOTALL)
