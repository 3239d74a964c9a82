"""Fault injection at the level of a whole run: signals, model faults and backend faults.

Each case checks: no hang, a clear outcome, the trajectory readable, the user's file unchanged and no
kernel process left behind.
"""

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.backends.scripted import ScriptedBackend
from agent.loop import RunConfig
from agent.records import read_trajectory
from agent.runner import analyze
from sandbox.kernel import kernels_in

pytestmark = pytest.mark.faults


def start_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
        cwd=Path(__file__).parents[1],
    )


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_execution(tmp_path, small_csv, sig):
    script = tmp_path / "r.json"
    script.write_text(
        json.dumps(["```python\nprint('started', flush=True)\nimport time\ntime.sleep(300)\n```"])
    )
    out = tmp_path / "run"
    before = hashlib.sha256(small_csv.read_bytes()).hexdigest()
    proc = start_cli(
        [str(small_csv), "q", "--backend", "scripted", "--model", str(script), "--out", str(out)]
    )
    assert wait_for(lambda: kernels_in(out), 60), "kernel never started"
    time.sleep(1.0)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == 130, proc.stderr.read()
    trajectory = read_trajectory(out / "trajectory.jsonl")
    assert trajectory.outcome.status == "interrupted"
    assert (out / "report.html").exists() and (out / "analysis.ipynb").exists()
    assert wait_for(lambda: not kernels_in(out), 10), "orphan kernel left behind"
    assert hashlib.sha256(small_csv.read_bytes()).hexdigest() == before


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        time.sleep(120)

    def log_message(self, *args):
        pass


def test_ctrl_c_during_generation(tmp_path, small_csv):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "run"
    try:
        proc = start_cli(
            [
                str(small_csv),
                "q",
                "--backend",
                "openai",
                "--model",
                "m",
                "--out",
                str(out),
                "--base-url",
                f"http://127.0.0.1:{server.server_port}/v1",
            ]
        )
        assert wait_for(lambda: (out / "trajectory.jsonl").exists(), 60)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        server.shutdown()
    assert proc.returncode == 130
    assert read_trajectory(out / "trajectory.jsonl").outcome.status == "interrupted"
    assert wait_for(lambda: not kernels_in(out), 10)


def test_server_down_is_one_clear_line(tmp_path, small_csv):
    out = tmp_path / "run"
    proc = start_cli(
        [
            str(small_csv),
            "q",
            "--backend",
            "openai",
            "--model",
            "m",
            "--out",
            str(out),
            "--base-url",
            "http://127.0.0.1:9/v1",
        ]
    )
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Error:" in stderr and "Traceback" not in stderr
    assert read_trajectory(out / "trajectory.jsonl").outcome.status == "error"


def run(tmp_path, csv, replies, **config):
    return analyze([csv], "q", tmp_path / "run", ScriptedBackend(replies), RunConfig(**config))


def test_unclosed_fence_and_huge_cell_run(tmp_path, small_csv):
    huge = "\n".join(f"v{i} = {i}" for i in range(6000)) + "\nprint('last', v5999)"
    assert len(huge) > 50_000
    replies = ["```python\nprint('open fence ok')\n", f"```python\n{huge}\n```", "## Final Report\ndone"]
    result = run(tmp_path, small_csv, replies)
    assert result.outcome.status == "report"
    assert result.trajectory.steps[0].execution.stdout.strip() == "open fence ok"
    assert result.trajectory.steps[1].execution.stdout.strip() == "last 5999"


def test_same_failing_cell_ten_times(tmp_path, small_csv):
    result = run(tmp_path, small_csv, ["```python\n1/0\n```"] * 10)
    assert result.outcome.status == "repeated_error" and result.outcome.turns == 3
    assert "ZeroDivisionError" in result.trajectory.steps[0].observation
    assert not kernels_in(tmp_path / "run")
