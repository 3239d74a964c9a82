"""Typed records of a run: messages, steps, the trajectory header and outcome.

A trajectory is stored as JSONL: one ``header`` line, one ``step`` line per turn (flushed as it
happens, so a crash or Ctrl-C leaves everything up to the last finished turn), and one ``outcome``
line when the run ends. Every line is one of the tagged models below, read back through a single
pydantic ``TypeAdapter``.
"""

from __future__ import annotations

import hashlib
import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from sandbox.result import ExecutionResult

Role = Literal["system", "user", "assistant"]
# "check": a report sent back once because some of its @name[value] answers match nothing printed
StepKind = Literal["code", "report", "no_code", "nudge", "check"]
Status = Literal[
    "report",  # finished with a final report
    "max_turns",
    "time_budget",
    "repeated_error",  # the same failing cell again and again
    "no_code",  # replies with neither code nor report, even after a nudge
    "interrupted",  # Ctrl-C / SIGTERM
    "error",  # a system fault (backend down, sandbox lost)
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Message(BaseModel):
    role: Role
    content: str


class DataFile(BaseModel):
    """A user input file as the run saw it: where it was, its hash, and the name the kernel reads."""

    name: str
    source: str
    sha256: str
    rows: int | None = None
    columns: int | None = None


class Header(BaseModel):
    kind: Literal["header"] = "header"
    question: str
    files: list[DataFile] = Field(default_factory=list)
    model: str
    backend: str
    config: dict[str, Any] = Field(default_factory=dict)
    version: str = ""
    task_id: str | None = None
    started_at: str = Field(default_factory=now_iso)
    messages: list[Message] = Field(default_factory=list, description="system + first user message")


class Step(BaseModel):
    """One turn: what the model wrote, the code taken from it, what the kernel returned."""

    kind: Literal["step"] = "step"
    index: int
    step_kind: StepKind
    model_text: str
    code: str | None = None
    execution: ExecutionResult | None = None
    observation: str = Field("", description="the user message fed back to the model after this turn")
    generation_seconds: float = 0.0
    execution_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    redrawn: int = Field(
        0,
        description="other replies drawn because the first resent a cell that had failed (RunConfig.resample)",
    )


class Outcome(BaseModel):
    kind: Literal["outcome"] = "outcome"
    status: Status
    report: str | None = None
    answers: dict[str, str] = Field(default_factory=dict)
    turns: int = 0
    wall_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = Field(0, description="turns whose cell raised, timed out or lost its kernel")
    detail: str = ""
    wrap_up_turn: int | None = Field(
        None, description="the turn after which the loop asked for the report because a cell kept failing"
    )
    finished_at: str = Field(default_factory=now_iso)


Record = Annotated[Header | Step | Outcome, Field(discriminator="kind")]
RECORD = TypeAdapter(Record)


class Trajectory(BaseModel):
    header: Header
    steps: list[Step] = Field(default_factory=list)
    outcome: Outcome | None = None

    def messages(self) -> list[Message]:
        """The conversation as the model saw it, ending with its last reply."""
        messages = list(self.header.messages)
        for step in self.steps:
            messages.append(Message(role="assistant", content=step.model_text))
            if step.observation and step.step_kind != "report":
                messages.append(Message(role="user", content=step.observation))
        while messages and messages[-1].role != "assistant":
            messages.pop()
        return messages

    def write(self, path: str | Path) -> None:
        with TrajectoryWriter(path, self.header) as writer:
            for step in self.steps:
                writer.step(step)
            if self.outcome is not None:
                writer.finish(self.outcome)


class TrajectoryWriter:
    """Appends records to a JSONL file, flushing and syncing each so a crash loses at most one turn."""

    def __init__(self, path: str | Path, header: Header):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: io.TextIOWrapper | None = open(self.path, "w", encoding="utf-8")
        self.trajectory = Trajectory(header=header)
        self._write(header)

    def _write(self, record: BaseModel) -> None:
        if self._handle is None:
            raise RuntimeError(f"trajectory {self.path} is closed")
        self._handle.write(record.model_dump_json() + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def step(self, step: Step) -> None:
        self.trajectory.steps.append(step)
        self._write(step)

    def finish(self, outcome: Outcome) -> None:
        self.trajectory.outcome = outcome
        self._write(outcome)
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trajectory(path: str | Path) -> Trajectory:
    """Read a trajectory, tolerating a torn last line (the run was killed while writing it)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(RECORD.validate_json(line))
        except ValueError:
            if number == len(lines) - 1:
                break
            raise
    if not records or not isinstance(records[0], Header):
        raise ValueError(f"{path}: not a trajectory (no header line)")
    trajectory = Trajectory(header=records[0])
    for record in records[1:]:
        if isinstance(record, Step):
            trajectory.steps.append(record)
        elif isinstance(record, Outcome):
            trajectory.outcome = record
    return trajectory
