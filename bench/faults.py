"""The fault table: each hostile cell against a real kernel, and what the user is left with.

Columns: fault, outcome, seconds from the start of the cell until the kernel answers again, whether
the user's input file is unchanged (sha256), whether the cell's record reads back, and how many
processes of the kernel survive close(). Whole-run faults (model, backend, signals) come from
``bench/faults_run.py``: there "recover s" is the time from the fault to the process exit. Run: ``.venv/bin/python bench/faults.py [--only NAME]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.records import file_sha256  # noqa: E402
from sandbox.kernel import KernelSandbox  # noqa: E402
from sandbox.launch import isolation_mode, pids_cgroup_root  # noqa: E402
from sandbox.result import ExecutionResult  # noqa: E402

GiB = 1 << 30


@dataclass
class Fault:
    name: str
    code: str
    timeout: float = 10.0
    memory_limit: int = GiB


@dataclass
class Row:
    fault: str
    outcome: str
    recover_s: float
    input_unchanged: bool
    record_readable: bool
    orphans: int


SWALLOW = "while True:\n    try:\n        pass\n    except BaseException:\n        pass"
SANDBOX_FAULTS = [
    Fault("infinite loop", "while True:\n    pass", timeout=2),
    Fault("time.sleep past the timeout", "import time\ntime.sleep(100)", timeout=2),
    Fault("loop swallowing KeyboardInterrupt", SWALLOW, timeout=2),
    Fault(
        "loop ignoring SIGINT", "import signal\nsignal.signal(2, signal.SIG_IGN)\nwhile True:\n    pass", 2
    ),
    Fault("allocate 50 GB at once", "x = bytearray(50 * 2**30)"),
    Fault("allocate 64 MB chunks forever", "c = []\nwhile True:\n    c.append(bytearray(64 * 2**20))", 60),
    Fault("fork bomb", "import os\nwhile True:\n    os.fork()", timeout=5),
    Fault(
        "spawn 1000 processes",
        "import subprocess\np = [subprocess.Popen(['sleep', '60']) for _ in range(1000)]",
    ),
    Fault("os.abort()", "import os\nos.abort()"),
    Fault("segfault via ctypes", "import ctypes\nctypes.string_at(0)"),
    Fault("os._exit(0)", "import os\nos._exit(0)"),
    Fault("sys.exit()", "import sys\nsys.exit()"),
    Fault("exit()", "exit()"),
    Fault("10^7-character print", "print('x' * 10**7)", timeout=60),
    Fault("10^5 tiny prints", "for i in range(10**5):\n    print(i)", timeout=60),
    Fault(
        "200-MB DataFrame repr",
        "import numpy as np, pandas as pd\ndf = pd.DataFrame(np.zeros((3_300_000, 8)))\ndf",
        timeout=60,
        memory_limit=4 * GiB,
    ),
    Fault("deep recursion traceback", "def f(n):\n    return f(n + 1)\nf(0)", timeout=60),
    Fault("input()", "input('name? ')"),
    Fault("getpass()", "import getpass\ngetpass.getpass()"),
    Fault(
        "plt.show() with a GUI backend",
        "import matplotlib\nmatplotlib.use('TkAgg')\nimport matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()",
        timeout=30,
    ),
    Fault(
        "overwrite + delete the copied input",
        "open('data.csv', 'w').write('x')\nimport os\nos.remove('data.csv')",
    ),
    Fault("write outside the workspace", "open('/tmp/analyst-fault-outside.txt', 'w').write('x')"),
    Fault(
        "urllib.request.urlopen",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=5)",
    ),
    Fault("raw socket connect", "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=5)"),
]


def outcome(result: ExecutionResult) -> str:
    """A few words on how the cell ended."""
    words = []
    if result.timed_out:
        words.append("timed out")
    if result.kernel_restarted:
        words.append("kernel restarted")
    elif result.timed_out:
        words.append("interrupted, state kept")
    if result.error is not None and result.error.ename not in ("KernelDied", "KeyboardInterrupt"):
        words.append(result.error.ename)
    if not words:
        words.append("ran" + (", output capped" if any("dropped" in n for n in result.notes) else ""))
    return ", ".join(words)


def run_fault(fault: Fault, root: Path) -> Row:
    """Run one fault in a fresh sandbox with a user CSV copied in."""
    original = root / "user" / "data.csv"
    original.parent.mkdir(parents=True)
    original.write_text("a,b\n1,2\n3,4\n")
    before = file_sha256(original)
    box = KernelSandbox(root / "workspace", root / "figures", memory_limit=fault.memory_limit)
    try:
        box.add_input(original)
        began = time.monotonic()
        result = box.execute(fault.code, timeout=fault.timeout)
        probe = box.execute("print(6 * 7)", timeout=30)
        recover = time.monotonic() - began if probe.stdout == "42\n" else float("nan")
        processes = _tree(box.pid)
    finally:
        box.close()
    time.sleep(0.3)
    orphans = sum(1 for p in processes if _alive(p))
    readable = ExecutionResult.model_validate_json(result.model_dump_json()) == result
    return Row(fault.name, outcome(result), recover, file_sha256(original) == before, readable, orphans)


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def print_table(rows: list[Row]) -> None:
    """The table as Markdown, so it pastes into docs as it is."""
    print("| fault | outcome | recover s | input unchanged | record readable | orphans |")
    print("|---|---|---:|:-:|:-:|---:|")
    for r in rows:
        yes = {True: "y", False: "**n**"}
        print(
            f"| {r.fault} | {r.outcome} | {r.recover_s:.1f} | {yes[r.input_unchanged]} "
            f"| {yes[r.record_readable]} | {r.orphans} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the faults whose name contains this text")
    args = parser.parse_args()
    from bench import faults_run

    cells = [(f, run_fault) for f in SANDBOX_FAULTS]
    runs = [(f, faults_run.run_fault) for f in faults_run.RUN_FAULTS]
    chosen = [(f, fn) for f, fn in cells + runs if not args.only or args.only in f.name]
    print(f"isolation: {isolation_mode()}, pids cgroup: {'yes' if pids_cgroup_root() else 'no'}")
    rows = []
    for fault, fn in chosen:
        with tempfile.TemporaryDirectory(prefix="fault-") as tmp:
            rows.append(fn(fault, Path(tmp)))
        print(f"  done: {fault.name}", file=sys.stderr, flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
