"""A Jupyter kernel that runs the model's code: stateful, bounded and recoverable.

What is isolated (Linux; the mode is probed once, see ``sandbox.launch.isolation_mode``):
  - Network: the kernel runs in its own network namespace (``unshare --net``), which has no
    interface but a down loopback, so no connection to the internet nor to the host's 127.0.0.1
    services. The kernel talks to us over Unix sockets (ZMQ ``ipc``), which do not need a network.
    On top of that, Python's ``socket.connect/connect_ex/sendto`` refuse IPv4/IPv6 with a clear
    ``PermissionError``; where no namespace can be made (``none`` mode) that guard is all there is,
    and ctypes or a subprocess (``curl``) can go around it.
  - Memory: ``RLIMIT_AS`` (default 4 GiB) in the kernel and everything it starts, so a big
    allocation raises ``MemoryError``; a kernel killed anyway (OOM killer) is detected and restarted.
  - Processes: a pids cgroup (v1 or v2, where the owner may create one: root, usually) caps the
    kernel's tasks, threads included, at ``max_processes``; a fork bomb hits the cap, the cell
    fails or times out, and the kernel is restarted. Without such a cgroup, ``RLIMIT_NPROC`` is set,
    which binds a non-root owner (counted over all of that user's processes) but never root, not
    even inside a user namespace (measured: ``ulimit -u 5`` there still forks 10).
  - Lifetime: the kernel has its own session and PID namespace; close() kills the process group,
    the namespace takes every process in it along (even daemonized ones), the kernel dies with the
    thread that started it (PDEATHSIG), and live sandboxes are closed at exit and on SIGTERM.
    Timeouts interrupt, then restart. Secret-looking environment variables are not passed on.
  - stdin: ``input()`` and ``getpass()`` raise ``StdinNotImplementedError`` instead of blocking.
What is NOT isolated:
  - The filesystem. The kernel runs with the owner's rights (root in a user namespace maps to the
    owner). The user's files are protected by copying them into the workspace: the model only knows
    the copies. A cell that guesses an absolute path can still write there.
  - CPU time and disk space are not capped (a cell's wall time is, by the timeout). No seccomp.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sandbox.launch import isolation_mode, make_pids_cgroup, remove_cgroup
from sandbox.outputs import OutputCollector
from sandbox.result import CellError, ExecutionResult

SECRET_RE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_LIVE: weakref.WeakSet[KernelSandbox] = weakref.WeakSet()


class SandboxError(RuntimeError):
    """A system fault of the sandbox (the kernel cannot start, the sandbox is closed)."""


class KernelStartError(SandboxError):
    """The kernel did not become ready."""


class KernelSandbox:
    """One Jupyter kernel with the workspace as cwd; ``execute`` runs a cell and never hangs."""

    max_processes = 256  # tasks, threads included: BLAS pools and ipykernel's own need room
    interrupt_grace = 3.0  # seconds a timed-out cell gets to return to idle after SIGINT
    fork_bomb_threshold = 64  # leftover processes after a failing cell that warrant a restart

    def __init__(
        self,
        workspace: Path,
        figures_dir: Path | None = None,
        *,
        memory_limit: int | None = 4 << 30,
        keep_chars: int = 200_000,
        allow_network: bool = False,
        startup_timeout: float = 60.0,
    ) -> None:
        self.workspace = Path(workspace).resolve()
        self.figures_dir = Path(figures_dir).resolve() if figures_dir else self.workspace / "figures"
        self.memory_limit = memory_limit
        self.keep_chars = keep_chars
        self.allow_network = allow_network
        self.startup_timeout = startup_timeout
        self.mode = isolation_mode()
        self.start_seconds = 0.0
        # Short: Unix socket paths are limited to 107 bytes. The pid lets a later owner sweep it.
        self._runtime = Path(tempfile.mkdtemp(prefix=f"ak-{os.getpid()}-"))
        self._starts = itertools.count()
        self._figure_numbers = itertools.count(1)
        self._km: Any = None
        self._kc: Any = None
        self._cgroup: Path | None = None
        self._reply: dict[str, Any] | None = None
        self._closed = False
        self.workspace.mkdir(parents=True, exist_ok=True)
        _install_exit_handlers()
        _LIVE.add(self)
        try:
            self._start()
        except BaseException:
            self.close()  # no runtime folder or cgroup left behind by a failed start
            raise

    # ----------------------------------------------------------------- lifecycle
    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "sandbox.launch", "--mode", self.mode]
        if self.memory_limit:
            cmd += ["--memory", str(self.memory_limit)]
        cmd += ["--nproc", str(self.max_processes + _user_tasks())]
        if self._cgroup is not None:
            cmd += ["--cgroup", str(self._cgroup)]
        if not self.allow_network:
            cmd.append("--no-network")
        return [*cmd, "-f", "{connection_file}"]

    def _environment(self) -> dict[str, str]:
        # The model's code can print os.environ into a report: keep the owner's secrets out of it.
        env = {k: v for k, v in os.environ.items() if not SECRET_RE.search(k)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        return env

    def _start(self) -> None:
        from jupyter_client.kernelspec import KernelSpec
        from jupyter_client.manager import KernelManager

        began = time.monotonic()
        n = next(self._starts)
        self._cgroup = make_pids_cgroup(f"analyst-{os.getpid()}-{id(self):x}-{n}", self.max_processes)
        km = KernelManager(
            transport="ipc",
            ip=str(self._runtime / f"k{n}"),
            connection_file=str(self._runtime / f"k{n}.json"),
        )
        km._kernel_spec = KernelSpec(
            argv=self._command(), display_name="analyst", language="python", interrupt_mode="signal"
        )
        # The kernel process's own stdout/stderr (not the cells': those come over iopub) go to a
        # log, so that a fork bomb's or a crash's noise never lands on the owner's terminal.
        self._log_path = self._runtime / f"k{n}.log"
        # Owned before it starts: a Ctrl-C that lands inside start_kernel (after the Popen) must
        # find the manager in close() and kill the new kernel, or the kernel outlives the run.
        self._km = km
        with open(self._log_path, "ab") as log:
            try:
                km.start_kernel(
                    cwd=str(self.workspace), env=self._environment(), stdout=log, stderr=subprocess.STDOUT
                )
            except Exception as exc:  # Popen errors, bad cwd: a system fault of the sandbox
                raise KernelStartError(f"could not start the kernel: {exc}") from exc
        self._kc = km.client()
        self._kc.start_channels(hb=False)  # liveness comes from the process, not heartbeats
        self._wait_ready(began + self.startup_timeout)
        self.start_seconds = time.monotonic() - began

    def _wait_ready(self, deadline: float) -> None:
        """Ask for kernel_info until its idle status comes back on iopub (so iopub is connected)."""
        pending: set[str] = set()
        while time.monotonic() < deadline:
            if not self._km.is_alive():
                self._stop()
                raise KernelStartError(f"the kernel exited during start: {self._log_tail()}")
            pending.add(self._kc.kernel_info())
            until = min(deadline, time.monotonic() + 0.25)
            while (left := until - time.monotonic()) > 0:
                try:
                    msg = self._kc.get_iopub_msg(timeout=left)
                except queue.Empty:
                    break
                if msg["parent_header"].get("msg_id") in pending and _is_idle(msg):
                    return
        self._stop()
        raise KernelStartError(
            f"the kernel was not ready within {self.startup_timeout:g} s: {self._log_tail()}"
        )

    def _log_tail(self, chars: int = 600) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-chars:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    def _stop(self) -> None:
        km, kc, self._km, self._kc = self._km, self._kc, None, None
        if kc is not None:
            # Bounded: after a Ctrl-C inside a zmq call during start, the client's context.term()
            # can wait forever for a socket it will never see closed (seen: a hung `analyst run`).
            stopper = threading.Thread(target=kc.stop_channels, name="stop-channels", daemon=True)
            stopper.start()
            stopper.join(_STOP_CHANNELS_S)
        if km is not None:
            try:
                if km.has_kernel:
                    km.shutdown_kernel(now=True)  # SIGKILL to the process group, then wait
            except Exception:  # a kernel that is already gone; nothing is left to stop
                pass
            km.cleanup_resources()
        remove_cgroup(self._cgroup)
        self._cgroup = None

    def restart(self) -> None:
        """Kill the kernel and start a fresh one in the same workspace (all state is lost)."""
        self._check_open()
        self._stop()
        self._start()

    def interrupt(self) -> None:
        """Send SIGINT to the kernel, as the notebook's stop button does."""
        self._check_open()
        self._km.interrupt_kernel()

    def close(self) -> None:
        """Stop the kernel and every process it started; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop()
        shutil.rmtree(self._runtime, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> KernelSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")

    @property
    def pid(self) -> int | None:
        """The pid of the process we launched (unshare, or the kernel itself in ``none`` mode)."""
        process = getattr(self._km.provisioner, "process", None) if self._km else None
        return process.pid if process is not None else None

    def is_alive(self) -> bool:
        return self._km is not None and self._km.is_alive()

    # ----------------------------------------------------------------- files
    def add_input(self, path: Path | str) -> str:
        """Copy a user file into the workspace and return the plain name the code should use."""
        source = Path(path)
        name = source.name
        target = self.workspace / name
        stem, suffix = source.stem, source.suffix
        for i in itertools.count(2):
            if not target.exists() or target.resolve() == source.resolve():
                break
            name = f"{stem}_{i}{suffix}"
            target = self.workspace / name
        if target.resolve() != source.resolve():
            shutil.copyfile(source, target)  # opens the original for reading only
        return name

    def repoint(self, workspace: Path, figures_dir: Path | None = None) -> None:
        """Move a warm kernel to another workspace and figures folder (used by the pool)."""
        self.workspace = Path(workspace).resolve()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.figures_dir = Path(figures_dir).resolve() if figures_dir else self.workspace / "figures"
        self._figure_numbers = itertools.count(1)
        setup = f"import os as _o; _o.chdir({str(self.workspace)!r}); del _o"
        result = self.execute(setup, timeout=30)
        if not result.ok:
            raise SandboxError(f"could not move the kernel to {self.workspace}: {result.observation()}")

    def _figure_path(self, suffix: str) -> Path:
        while True:
            path = self.figures_dir / f"figure_{next(self._figure_numbers):03d}{suffix}"
            if not path.exists():
                return path

    # ----------------------------------------------------------------- execution
    def execute(self, code: str, timeout: float = 60.0) -> ExecutionResult:
        """Run one cell. Faults of the code (errors, timeouts, a dead kernel) land in the result."""
        self._check_open()
        began = time.monotonic()
        result = ExecutionResult(code=code)
        if not self.is_alive():
            self._recover(result, f"the kernel had died ({self._exit_status()}) after the previous cell")
        out = OutputCollector(self.keep_chars, self.figures_dir, self._figure_path)
        self._reply = None
        msg_id = self._kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        state = self._wait(msg_id, timeout, out, result)
        out.fill(result)
        if state == "idle":
            reply = self._drain_shell(msg_id)
            if any(p.get("source") == "ask_exit" for p in reply.get("payload", [])):
                # exit()/quit() ask the front end to stop the kernel; do it now, not mid-next-cell.
                self._recover(result, "the cell called exit()")
            else:
                self._check_processes(result)
        elif state == "timeout":
            self._recover(result, f"the cell ran past the {timeout:g} s timeout and ignored the interrupt")
        else:
            self._recover(result, f"the kernel died ({self._exit_status()}) while running this cell")
            result.error = result.error or CellError(ename="KernelDied", evalue=result.notes[-1])
        result.duration = time.monotonic() - began
        return result

    def _wait(self, msg_id: str, timeout: float, out: OutputCollector, result: ExecutionResult) -> str:
        """Wait for the cell, interrupting it at the deadline; "idle", "timeout" or "dead"."""
        try:
            state = self._collect(msg_id, time.monotonic() + timeout, out)
            if state == "timeout":
                self._km.interrupt_kernel()
                state = self._collect(msg_id, time.monotonic() + self.interrupt_grace, out)
                result.timed_out = True
                if state == "idle":
                    result.notes.append(f"the cell ran past the {timeout:g} s timeout and was interrupted")
        except BaseException:
            # The owner was interrupted (Ctrl-C, SIGTERM): stop the cell too, so that a caller who
            # goes on with this sandbox does not queue behind it.
            if self._km is not None and self._km.is_alive():
                self._km.interrupt_kernel()
            raise
        return state

    def _collect(self, msg_id: str, deadline: float, out: OutputCollector) -> str:
        """Feed this cell's iopub messages to ``out`` until idle ("idle"), "timeout" or "dead"."""
        replied_at: float | None = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self._kc.get_iopub_msg(timeout=min(left, 0.2))
            except queue.Empty:
                if not self._km.is_alive():
                    return "dead"
                # iopub is a PUB socket and may drop messages, idle included, when flooded; the
                # shell reply is never dropped: 1 s after it without idle, the cell is done.
                if replied_at is None and self._poll_reply(msg_id):
                    replied_at = time.monotonic()
                elif replied_at is not None and time.monotonic() - replied_at > 1.0:
                    out.lost_idle = True
                    return "idle"
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if _is_idle(msg):
                return "idle"
            out.handle(msg)
        return "timeout" if self._km.is_alive() else "dead"

    def _poll_reply(self, msg_id: str) -> bool:
        """Read waiting shell replies without blocking; True once this cell's has come."""
        while self._kc.shell_channel.msg_ready():
            reply = self._kc.get_shell_msg(timeout=0)
            if reply["parent_header"].get("msg_id") == msg_id:
                self._reply = reply["content"]
                return True
        return False

    def _drain_shell(self, msg_id: str) -> dict[str, Any]:
        """Read this cell's execute_reply (sent before idle), keeping the shell queue empty."""
        if self._reply is not None:
            return self._reply
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = self._kc.get_shell_msg(timeout=left)
            except queue.Empty:
                break
            if reply["parent_header"].get("msg_id") == msg_id:
                content: dict[str, Any] = reply["content"]
                return content
        return {}

    def _recover(self, result: ExecutionResult, why: str) -> None:
        self._stop()
        self._start()
        result.kernel_restarted = True
        result.notes.append(f"{why}; the kernel was restarted and all variables and imports are lost")

    def _exit_status(self) -> str:
        process = getattr(self._km.provisioner, "process", None) if self._km else None
        code = process.poll() if process is not None else None
        if code is None:
            return "exit status unknown"
        if code < 0 or code > 128:
            number = -code if code < 0 else code - 128
            return f"killed by {signal.Signals(number).name}" if number in _SIGNALS else f"status {code}"
        return f"exit status {code}"

    def _check_processes(self, result: ExecutionResult) -> None:
        """After a failing cell, restart a kernel that left a crowd of processes (a fork bomb)."""
        if result.error is None or self.pid is None:
            return
        import psutil

        try:
            count = len(psutil.Process(self.pid).children(recursive=True))
        except psutil.Error:
            return
        if count > self.fork_bomb_threshold:
            self._recover(result, f"the cell left {count} processes running")


_SIGNALS = {s.value for s in signal.Signals}
_STOP_CHANNELS_S = 5.0


def _user_tasks() -> int:
    """Tasks (threads) the owner already runs: RLIMIT_NPROC counts them all for a non-root user."""
    if os.geteuid() == 0:
        return 0  # never binds root; the pids cgroup does the job there
    import psutil

    uid = os.getuid()
    total = 0
    for process in psutil.process_iter(["uids", "num_threads"]):
        uids, threads = process.info["uids"], process.info["num_threads"]
        if uids is not None and uids.real == uid and threads:
            total += threads
    return total


def _is_idle(msg: dict[str, Any]) -> bool:
    return msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"


def close_all() -> None:
    """Close every live sandbox (atexit and SIGTERM)."""
    for sandbox in list(_LIVE):
        sandbox.close()


_handlers_installed = False


def _install_exit_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    _sweep_stale_runtimes()
    atexit.register(close_all)
    # Only take over SIGTERM when nobody else has, and only from the main thread (signal's rule).
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)


def _sweep_stale_runtimes() -> None:
    # Folders of owners that were SIGKILLed (connection files, sockets, the kernel's log).
    for folder in Path(tempfile.gettempdir()).glob("ak-*-*"):
        owner = folder.name.split("-")[1]
        if owner.isdigit() and not Path("/proc", owner).exists():
            shutil.rmtree(folder, ignore_errors=True)


def _on_sigterm(signum: int, frame: Any) -> None:
    # Raising lets `with` blocks and `finally` clauses of the owner run; atexit closes the rest.
    raise SystemExit(128 + signum)


def kernels_in(folder: str | Path) -> list[Any]:
    """Live kernel processes whose working directory lies under ``folder`` (for orphan checks)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            command = " ".join(proc.info["cmdline"] or [])
            if ("ipykernel" in command or "sandbox.launch" in command) and str(folder) in proc.cwd():
                found.append(proc)
        except psutil.Error:
            continue
    return found
