"""The kernel's launcher: isolate, set limits, then start ipykernel in this very process.

Run as ``python -m sandbox.launch [limits] -f CONNECTION_FILE``. The outer stage asks to be killed
when its parent dies and re-executes itself under ``unshare`` (new user, network and PID namespaces)
when the OS allows it; the inner stage sets rlimits, blocks sockets, installs the figure describer
and starts the kernel. Kept free of heavy imports: it is on the path of every kernel start.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
# The strongest mode first. "userns" works for non-root owners too (where the OS allows
# unprivileged user namespaces); "netns" needs root. Neither makes RLIMIT_NPROC bind root: the
# kernel exempts the initial root user whatever the namespace, hence the pids cgroup.
MODES: dict[str, list[str]] = {
    "userns": ["--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"],
    "netns": ["--net", "--pid", "--fork", "--kill-child"],
}
NETWORK_DISABLED = "network access is disabled in this sandbox"


@functools.cache
def isolation_mode() -> str:
    """The namespace mode this machine allows: ``userns``, ``netns`` or ``none`` (probed once)."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return "none"
    for mode, flags in MODES.items():
        try:
            probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return mode
    return "none"


@functools.cache
def pids_cgroup_root() -> Path | None:
    """A cgroup folder where we may create children with ``pids.max`` (cgroup v1 or v2), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
        elif controllers == "" and "pids" in _read(Path("/sys/fs/cgroup/cgroup.subtree_control")):
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
        else:
            continue
        if (base / "cgroup.procs").exists() and os.access(base, os.W_OK):
            return base
    return None


def make_pids_cgroup(name: str, max_pids: int) -> Path | None:
    """Create a cgroup capping the number of tasks (threads included); None where we cannot."""
    root = pids_cgroup_root()
    if root is None:
        return None
    _sweep_stale(root)
    group = root / name
    try:
        group.mkdir(exist_ok=True)
        (group / "pids.max").write_text(str(max_pids))
    except OSError:
        remove_cgroup(group)
        return None
    return group


def remove_cgroup(group: Path | None) -> None:
    """Remove an emptied cgroup; its tasks may take a moment to leave after SIGKILL."""
    if group is None:
        return
    for _ in range(50):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _sweep_stale(root: Path) -> None:
    # Groups of owners that were SIGKILLed stay behind; rmdir only succeeds once they are empty.
    for group in root.glob("analyst-*-*"):
        owner = group.name.split("-")[1]
        if owner.isdigit() and not Path("/proc", owner).exists():
            try:
                group.rmdir()
            except OSError:
                pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.launch")
    parser.add_argument("--memory", type=int, default=0, help="RLIMIT_AS in bytes (0: none)")
    parser.add_argument("--nproc", type=int, default=0, help="RLIMIT_NPROC (0: none)")
    parser.add_argument("--cgroup", default="", help="a pids cgroup folder to join first")
    parser.add_argument("--mode", choices=["userns", "netns", "none"], default="none")
    parser.add_argument("--no-network", action="store_true")
    parser.add_argument("--inner", action="store_true", help="already inside the namespaces")
    parser.add_argument("-f", dest="connection_file", required=True)
    return parser.parse_args(argv)


def _die_with_parent() -> None:
    # SIGKILL on the owner must not leave a kernel behind. The flag survives the exec of unshare,
    # whose --kill-child passes it on; the PID namespace then takes every process in it along.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _set_limits(memory: int, nproc: int) -> None:
    if memory > 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        except (ValueError, OSError):  # macOS refuses RLIMIT_AS below the current use
            pass
    if nproc > 0:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        except (ValueError, OSError):
            pass


def block_network() -> None:
    """Refuse IPv4/IPv6 connections from Python code; ZMQ uses Unix sockets and is not affected."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto

    def guarded(original: Any) -> Any:
        @functools.wraps(original)
        def method(self: socket.socket, *args: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise PermissionError(NETWORK_DISABLED)
            return original(self, *args)

        return method

    socket.socket.connect = guarded(original_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded(original_connect_ex)  # type: ignore[method-assign]
    socket.socket.sendto = guarded(original_sendto)  # type: ignore[method-assign]


def describe_figure(fig: Any, printer: Any, cycle: bool) -> None:
    """The text/plain of a matplotlib figure: titles, labels and what each axes draws."""
    parts = []
    for ax in fig.get_axes()[:6]:
        bits = []
        for label, value in (("title", ax.get_title()), ("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            if value:
                bits.append(f"{label}={value[:60]!r}")
        counts = (("lines", ax.lines), ("bars/patches", ax.patches), ("collections", ax.collections))
        bits += [f"{len(items)} {name}" for name, items in counts if len(items)]
        parts.append("axes(" + ", ".join(bits) + ")")
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
    head = f"Figure with {len(fig.get_axes())} axes" + (f", suptitle={title[:60]!r}" if title else "")
    printer.text("; ".join([head, *parts]))


def install_describer() -> None:
    """Make a figure's text/plain (sent next to its PNG) a short description of what it shows."""
    from IPython import get_ipython
    from IPython.core import pylabtools

    plain = get_ipython().display_formatter.formatters["text/plain"]
    plain.for_type_by_name("matplotlib.figure", "Figure", describe_figure)
    original = pylabtools.select_figure_formats

    # Activating the inline backend pops every Figure formatter, ours too: put it back after.
    def select_figure_formats(shell: Any, formats: Any, **kwargs: Any) -> None:
        original(shell, formats, **kwargs)
        from matplotlib.figure import Figure

        shell.display_formatter.formatters["text/plain"].for_type(Figure, describe_figure)

    pylabtools.select_figure_formats = select_figure_formats


def _start_kernel(connection_file: str) -> None:
    # The debugger is never used here and importing debugpy costs a good part of the start time.
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(
        [
            "-f",
            connection_file,
            "--HistoryManager.enabled=False",
            "--InteractiveShell.colors=nocolor",
            # Plain tracebacks read like standard Python, and a deep recursion formats in 0.3 s
            # instead of 10 s in Context mode.
            "--InteractiveShell.xmode=Plain",
            "--IPKernelApp.quiet=True",
            # Runs once the shell exists; binds no name in the user's namespace.
            "--IPKernelApp.exec_lines=__import__('sandbox.launch').launch.install_describer()",
        ]
    )
    app.start()


def main(argv: list[str] | None = None) -> None:
    """Entry point: outer stage re-executes under unshare, inner stage starts the kernel."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    if not args.inner:
        _die_with_parent()
        if args.cgroup:
            # Joined before unshare so that every process of the kernel is counted, whatever it does.
            Path(args.cgroup, "cgroup.procs").write_text("0")
        if args.mode in MODES:
            unshare = shutil.which("unshare") or "unshare"
            flags = [f for f in MODES[args.mode] if args.no_network or f != "--net"]
            cmd = [unshare, *flags, sys.executable, "-m", "sandbox.launch", "--inner", *argv]
            os.execv(unshare, cmd)
    _set_limits(args.memory, args.nproc)
    if args.no_network:
        block_network()
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    _start_kernel(args.connection_file)


if __name__ == "__main__":
    main()
