"""Whole-run faults for the fault table: the model misbehaves, the backend fails, the user hits Ctrl-C.

Each row runs ``analyst run`` as a real process (scripted model, or the openai backend against a
misbehaving HTTP server on 127.0.0.1) and reports its exit, how long the fault took to resolve,
whether the user's file is unchanged, whether the trajectory reads back, and leftover kernels.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELL = "```python\nimport pandas as pd\ndf = pd.read_csv('data.csv')\nprint(df.a.sum())\n```"


@dataclass
class RunFault:
    name: str
    replies: list[str] | None = None  # scripted model
    server: Callable[[], type[http.server.BaseHTTPRequestHandler]] | None = None  # openai backend
    signal_after: float | None = None  # send SIGINT this many seconds after the kernel is up
    sig: int = signal.SIGINT


def _handler(behaviour: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            if behaviour == "slow":
                time.sleep(300)
            if behaviour == "500":
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b'{"error": "boom"}')
                return
            if behaviour == "cut":  # a streamed/long answer that stops mid-body
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "1000")
                self.end_headers()
                self.wfile.write(b'{"choices": [{"mess')
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{not json")

        def log_message(self, *args):
            pass

    return Handler


RUN_FAULTS = [
    RunFault("model writes no code (twice)", replies=["I would look at the data.", "It looks fine."]),
    RunFault("model report before any code", replies=["## Final Report\nmade up", "## Final Report\nstill"]),
    RunFault("unclosed code fence", replies=["```python\nprint('open')\n", CELL, "## Final Report\nok"]),
    RunFault(
        "50 KB of code", replies=["```python\n" + "x = 1\n" * 10_000 + "print(x)\n```", "## Final Report\nok"]
    ),
    RunFault("same failing cell 10 times", replies=["```python\n1/0\n```"] * 10),
    RunFault("server down", server=None),
    RunFault("HTTP 500 every time", server=lambda: _handler("500")),
    RunFault("malformed JSON", server=lambda: _handler("json")),
    RunFault("response cut mid-body", server=lambda: _handler("cut")),
    RunFault("Ctrl-C during generation", server=lambda: _handler("slow"), signal_after=2),
    RunFault(
        "SIGTERM during generation", server=lambda: _handler("slow"), signal_after=2, sig=signal.SIGTERM
    ),
    RunFault(
        "Ctrl-C during execution", replies=["```python\nimport time\ntime.sleep(300)\n```"], signal_after=3
    ),
    RunFault(
        "SIGTERM during execution",
        replies=["```python\nimport time\ntime.sleep(300)\n```"],
        signal_after=3,
        sig=signal.SIGTERM,
    ),
]


def _command(fault: RunFault, csv: Path, out: Path, port: int | None) -> list[str]:
    args = [sys.executable, "-m", "agent.cli", "run", str(csv), "sum a", "--out", str(out), "--quiet"]
    if fault.replies is not None:
        script = out.parent / "replies.json"
        script.write_text(json.dumps(fault.replies))
        return [*args, "--backend", "scripted", "--model", str(script)]
    url = f"http://127.0.0.1:{port or 9}/v1"
    return [*args, "--backend", "openai", "--model", "m", "--base-url", url]


def run_fault(fault: RunFault, root: Path):
    """One whole run under ``fault``; returns a bench.faults.Row."""
    from agent.records import file_sha256, read_trajectory
    from bench.faults import Row
    from sandbox.kernel import kernels_in

    csv = root / "user" / "data.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("a,b\n1,2\n3,4\n")
    before = file_sha256(csv)
    out = root / "run"
    server = None
    if fault.server is not None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), fault.server())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port if server else None
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    began = time.monotonic()
    proc = subprocess.Popen(
        _command(fault, csv, out, port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if fault.signal_after is not None:
            _wait(lambda: kernels_in(out), 60)
            time.sleep(fault.signal_after)
            began = time.monotonic()
            proc.send_signal(fault.sig)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if server is not None:
            server.shutdown()
    seconds = time.monotonic() - began
    _wait(lambda: not kernels_in(out), 10)
    try:
        status = read_trajectory(out / "trajectory.jsonl").outcome.status
        readable = True
    except (OSError, ValueError, AttributeError):
        status, readable = "?", False
    last = (stderr.strip().splitlines() or [""])[-1][:60]
    outcome = f"exit {proc.returncode}, {status}" + (f": {last}" if proc.returncode == 1 else "")
    return Row(fault.name, outcome, seconds, file_sha256(csv) == before, readable, len(kernels_in(out)))


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False
