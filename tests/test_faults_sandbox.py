"""The sandbox half of the fault suite: hostile cells against a real kernel. Run with ``-m faults``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sandbox.kernel import KernelSandbox
from sandbox.launch import isolation_mode, pids_cgroup_root

pytestmark = pytest.mark.faults


@pytest.fixture
def box(tmp_path: Path) -> Iterator[KernelSandbox]:
    with KernelSandbox(tmp_path / "ws", tmp_path / "figures", memory_limit=1 << 30) as sandbox:
        yield sandbox


def assert_usable(box: KernelSandbox) -> None:
    result = box.execute("print(6 * 7)", timeout=30)
    assert result.ok and result.stdout == "42\n", result.observation()


def test_loop_that_swallows_keyboard_interrupt_is_stopped(box: KernelSandbox) -> None:
    # SIGINT may land on the `while` line, outside the try, so either outcome is fine: the loop
    # ends by interrupt or by restart, and the kernel is usable in bounded time.
    code = "while True:\n    try:\n        pass\n    except BaseException:\n        pass"
    began = time.monotonic()
    result = box.execute(code, timeout=2)
    assert result.timed_out
    assert time.monotonic() - began < 2 + box.interrupt_grace + 15
    assert_usable(box)


def test_loop_that_ignores_sigint_is_restarted(box: KernelSandbox) -> None:
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    began = time.monotonic()
    result = box.execute(code, timeout=2)
    assert result.timed_out and result.kernel_restarted
    assert time.monotonic() - began < 2 + box.interrupt_grace + 15
    assert any("ignored the interrupt" in note for note in result.notes)
    assert_usable(box)


@pytest.mark.parametrize(
    ("code", "how"),
    [
        ("import ctypes\nctypes.string_at(0)", "SIG"),
        ("import os\nos.abort()", "SIG"),
        ("import os\nos._exit(0)", "exit status 0"),
    ],
    ids=["segfault", "abort", "exit0"],
)
def test_crashing_kernel_is_restarted(box: KernelSandbox, code: str, how: str) -> None:
    result = box.execute(code, timeout=30)
    assert result.kernel_restarted and result.error is not None
    assert result.error.ename == "KernelDied" and how in result.error.evalue
    assert_usable(box)


def test_sys_exit_keeps_kernel_and_exit_restarts_it(box: KernelSandbox) -> None:
    box.execute("kept = 1")
    assert not box.execute("import sys\nsys.exit(3)").kernel_restarted
    assert box.execute("kept").result == "1"
    result = box.execute("exit()")
    assert result.kernel_restarted and any("exit()" in note for note in result.notes)
    assert_usable(box)


def test_huge_allocation_raises_memory_error(box: KernelSandbox) -> None:
    host_before = psutil.Process().memory_info().rss
    result = box.execute("x = bytearray(50 * 2**30)", timeout=30)
    assert result.error is not None and result.error.ename == "MemoryError"
    assert psutil.Process().memory_info().rss - host_before < 200 << 20
    assert_usable(box)


def test_gradual_allocation_is_capped(box: KernelSandbox) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 2**20))"
    result = box.execute(code, timeout=60)
    assert result.kernel_restarted or (result.error is not None and result.error.ename == "MemoryError")
    box.execute("chunks = None")
    assert_usable(box)


def _tasks_under(pid: int) -> int:
    try:
        processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0
    return sum(p.num_threads() for p in processes if p.is_running())


@pytest.mark.skipif(
    os.geteuid() == 0 and pids_cgroup_root() is None,
    reason="root without a writable pids cgroup: RLIMIT_NPROC does not bind root",
)
def test_fork_bomb_is_bounded_and_recovered(box: KernelSandbox) -> None:
    peak, stop = [0], threading.Event()
    pid = box.pid
    assert pid is not None

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tasks_under(pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = box.execute("import os\nwhile True:\n    os.fork()", timeout=5)
    finally:
        stop.set()
        watcher.join()
    assert not result.ok
    # unshare and counting races add a few tasks to the cap the kernel lives under
    assert peak[0] <= box.max_processes + 8, peak[0]
    assert_usable(box)


def test_many_tiny_prints_arrive_in_full(box: KernelSandbox) -> None:
    result = box.execute("for i in range(100_000):\n    print(i)", timeout=60)
    assert result.ok
    assert result.stdout.endswith("99999\n")
    assert "\n99999\n" in result.observation(4000)


def test_deep_recursion_traceback_is_bounded(box: KernelSandbox) -> None:
    result = box.execute("def f(n):\n    return f(n + 1)\nf(0)", timeout=60)
    assert result.error is not None and result.error.ename == "RecursionError"
    assert result.duration < 20
    assert len(result.observation(4000)) < 4200


def test_interactive_backend_does_not_hang(box: KernelSandbox) -> None:
    code = "import matplotlib\nmatplotlib.use('TkAgg')\nimport matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()"
    result = box.execute(code, timeout=30)
    assert not result.timed_out and result.duration < 20
    assert_usable(box)


def test_raw_socket_refused(box: KernelSandbox) -> None:
    code = "import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('1.1.1.1', 80))"
    result = box.execute(code, timeout=30)
    assert result.error is not None and result.error.ename == "PermissionError"


@pytest.mark.skipif(isolation_mode() == "none", reason="needs a PID namespace")
def test_daemonized_process_dies_with_the_kernel(tmp_path: Path) -> None:
    box = KernelSandbox(tmp_path / "ws")
    marker = "sleep 999.25"
    box.execute(f"import subprocess\nsubprocess.Popen(['setsid', 'sh', '-c', '{marker} &'])")
    time.sleep(0.5)
    assert any(marker in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))
    box.close()
    time.sleep(0.3)
    left = [
        p for p in psutil.process_iter(["cmdline", "status"]) if marker in " ".join(p.info["cmdline"] or [])
    ]
    assert [p for p in left if p.info["status"] != psutil.STATUS_ZOMBIE] == []


OWNER = """
import sys
from pathlib import Path
from sandbox.kernel import KernelSandbox
box = KernelSandbox(Path(sys.argv[1]))
print(box.pid, flush=True)
box.execute("import time\\ntime.sleep(100)", timeout=100)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_owner_killed_mid_cell_leaves_no_kernel(tmp_path: Path, signum: int) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "ws")], stdout=subprocess.PIPE, text=True, cwd=root
    )
    assert owner.stdout is not None
    kernel_pid = int(owner.stdout.readline())
    processes = [psutil.Process(kernel_pid), *psutil.Process(kernel_pid).children(recursive=True)]
    time.sleep(1.0)  # the cell is running
    owner.send_signal(signum)
    owner.wait(timeout=30)
    # SIGTERM is turned into SystemExit (so `with` blocks and atexit close the kernel); SIGKILL
    # cannot be caught, and the kernel goes by PR_SET_PDEATHSIG.
    assert owner.returncode == (128 + signum if signum == signal.SIGTERM else -signum)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.1)
    assert alive == []
