import json
import os
import signal
import subprocess
import sys
import time

import pytest

from agent.records import (
    DataFile,
    Header,
    Message,
    Outcome,
    Step,
    Trajectory,
    TrajectoryWriter,
    read_trajectory,
)
from sandbox.result import CellError, DisplayItem, ExecutionResult


def sample_trajectory() -> Trajectory:
    header = Header(
        question="What is the mean?",
        files=[DataFile(name="d.csv", source="/tmp/d.csv", sha256="ab" * 32, rows=10, columns=2)],
        model="m",
        backend="scripted",
        config={"max_turns": 5},
        version="0.1.0",
        messages=[Message(role="system", content="sys"), Message(role="user", content="task")],
    )
    execution = ExecutionResult(
        code="print(1)",
        stdout="1\n",
        displays=[DisplayItem(mime="image/png", path="figures/f.png", width=640, height=480)],
        error=CellError(ename="KeyError", evalue="'x'", traceback="Traceback...\nKeyError: 'x'"),
        duration=0.5,
    )
    steps = [
        Step(
            index=1,
            step_kind="code",
            model_text="```python\nprint(1)\n```",
            code="print(1)",
            execution=execution,
            observation="Output: 1",
            prompt_tokens=10,
            completion_tokens=5,
        ),
        Step(index=2, step_kind="report", model_text="## Final Report\n@mean[1.0]"),
    ]
    outcome = Outcome(status="report", report="## Final Report\n@mean[1.0]", answers={"mean": "1.0"}, turns=2)
    return Trajectory(header=header, steps=steps, outcome=outcome)


def test_round_trip(tmp_path):
    original = sample_trajectory()
    path = tmp_path / "t.jsonl"
    original.write(path)
    assert read_trajectory(path) == original
    lines = path.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["header", "step", "step", "outcome"]


def test_messages_alternate_and_end_with_the_report():
    messages = sample_trajectory().messages()
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[-1].content.startswith("## Final Report")


def test_torn_last_line_is_tolerated(tmp_path):
    path = tmp_path / "t.jsonl"
    sample_trajectory().write(path)
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # the outcome line cut mid-write
    record = read_trajectory(path)
    assert record.outcome is None and len(record.steps) == 2


def test_not_a_trajectory(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"kind": "step", "index": 1, "step_kind": "code", "model_text": ""}\n')
    with pytest.raises(ValueError, match="no header"):
        read_trajectory(path)


WRITER_SCRIPT = """
import sys, time
from agent.records import Header, Step, TrajectoryWriter
writer = TrajectoryWriter(sys.argv[1], Header(question="q", model="m", backend="b"))
for i in range(1, 1000):
    writer.step(Step(index=i, step_kind="code", model_text="x" * 100))
    print(i, flush=True)
    time.sleep(0.05)
"""


def test_killed_writer_leaves_a_readable_trajectory(tmp_path):
    path = tmp_path / "t.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": os.getcwd()},
    )
    for _ in range(5):
        process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.1)
    record = read_trajectory(path)
    assert record.outcome is None
    assert len(record.steps) >= 5
    assert [s.index for s in record.steps] == list(range(1, len(record.steps) + 1))


def test_writer_refuses_after_finish(tmp_path):
    writer = TrajectoryWriter(tmp_path / "t.jsonl", Header(question="q", model="m", backend="b"))
    writer.finish(Outcome(status="max_turns"))
    with pytest.raises(RuntimeError):
        writer.step(Step(index=1, step_kind="code", model_text=""))
