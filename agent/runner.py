"""One analysis from start to finish: check inputs, set up the run folder and kernel, loop, report.

Run folder layout: ``trajectory.jsonl``, ``report.md``, ``report.html``, ``analysis.ipynb``,
``figures/`` (PNG charts) and ``workspace/`` (the kernel's cwd, holding copies of the inputs).
"""

from __future__ import annotations

import dataclasses
import re
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from agent import prompts
from agent.backends.base import Backend, BackendError
from agent.loop import LoopCallbacks, RunConfig, run_loop, summarize
from agent.preview import InputError, InputFile, check_question, check_writable, load_input, preview_text
from agent.records import DataFile, Header, Message, Outcome, Trajectory, TrajectoryWriter, file_sha256

__all__ = ["RunConfig", "RunResult", "analyze", "check_inputs", "default_out_dir"]


@dataclass
class RunResult:
    out_dir: Path
    trajectory: Trajectory
    files: dict[str, Path]
    error: str | None = None

    @property
    def outcome(self) -> Outcome:
        assert self.trajectory.outcome is not None
        return self.trajectory.outcome


def analyst_version() -> str:
    try:
        return version("analyst")
    except PackageNotFoundError:
        return "0+unknown"


def check_inputs(files: list[str | Path], question: str) -> tuple[list[InputFile], str]:
    """Validate every input before anything expensive happens; raises InputError."""
    question = check_question(question)
    if not files:
        raise InputError("Give at least one data file")
    inputs = [load_input(path) for path in files]
    names = [info.name for info in inputs]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise InputError(f"Two inputs share the file name {sorted(duplicated)[0]}; rename one")
    return inputs, question


def default_out_dir(question: str, root: Path = Path("runs")) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", question.lower()).strip("-")[:40] or "run"
    return root / f"{datetime.now():%Y%m%d-%H%M%S}-{slug}"


def build_header(
    inputs: list[InputFile], question: str, backend: Backend, config: RunConfig, task_id: str | None
) -> Header:
    files = [
        DataFile(
            name=info.name,
            source=str(info.path.resolve()),
            sha256=file_sha256(info.path),
            rows=info.tables[0].rows if info.tables else None,
            columns=info.tables[0].frame.shape[1] if info.tables else None,
        )
        for info in inputs
    ]
    messages = [
        Message(role="system", content=prompts.SYSTEM_PROMPT),
        Message(role="user", content=prompts.first_user_message(question, [preview_text(i) for i in inputs])),
    ]
    return Header(
        question=question,
        files=files,
        model=backend.model_id,
        backend=backend.name,
        config=dataclasses.asdict(config),
        version=analyst_version(),
        task_id=task_id,
        messages=messages,
    )


def analyze(
    files: list[str | Path],
    question: str,
    out_dir: Path,
    backend: Backend,
    config: RunConfig | None = None,
    *,
    task_id: str | None = None,
    sandbox=None,
    callbacks: LoopCallbacks | None = None,
    inputs: list[InputFile] | None = None,
) -> RunResult:
    """Run one analysis into ``out_dir``; the trajectory and reports are written even if it is cut short."""
    config = config or RunConfig()
    if inputs is None:
        inputs, question = check_inputs(files, question)
    out_dir = Path(out_dir)
    check_writable(out_dir)
    writer = TrajectoryWriter(
        out_dir / "trajectory.jsonl", build_header(inputs, question, backend, config, task_id)
    )
    started = time.monotonic()
    own_sandbox = sandbox is None
    error = None
    try:
        if own_sandbox:
            sandbox = _start_sandbox(out_dir)
        for info in inputs:
            sandbox.add_input(info.path)
        outcome = run_loop(backend, sandbox, writer, config, callbacks, tables=input_tables(inputs))
    except KeyboardInterrupt:
        outcome = summarize(
            writer.trajectory.steps, "interrupted", time.monotonic() - started, detail="interrupted"
        )
    except BackendError as exc:
        error = str(exc)
        outcome = summarize(writer.trajectory.steps, "error", time.monotonic() - started, detail=error)
    finally:
        if own_sandbox and sandbox is not None:
            sandbox.close()
    writer.finish(outcome)
    return RunResult(
        out_dir=out_dir, trajectory=writer.trajectory, files=_write_outputs(writer, out_dir), error=error
    )


def input_tables(inputs: list[InputFile]) -> dict[str, pd.DataFrame]:
    """The sampled frame of each input table, named as the model sees it (``book.xlsx [Sheet1]``)."""
    return {
        info.name if len(info.tables) == 1 else f"{info.name} [{table.sheet}]": table.frame
        for info in inputs
        for table in info.tables
    }


def _start_sandbox(out_dir: Path):
    from sandbox.kernel import KernelSandbox

    return KernelSandbox(out_dir / "workspace", out_dir / "figures")


def _write_outputs(writer: TrajectoryWriter, out_dir: Path) -> dict[str, Path]:
    from agent.notebook import write_notebook
    from agent.report import write_report

    report_md, report_html = write_report(writer.trajectory, out_dir)
    notebook = write_notebook(writer.trajectory, out_dir)
    return {
        "trajectory": writer.path,
        "report_md": report_md,
        "report_html": report_html,
        "notebook": notebook,
    }


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so a terminated run still writes its trajectory and report."""

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
