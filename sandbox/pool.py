"""Pre-started kernels, so a batch of runs does not wait for a kernel start at every task."""

from __future__ import annotations

import itertools
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from sandbox.kernel import KernelSandbox, SandboxError


class KernelPool:
    """Keeps ``size`` warm kernels. A kernel serves one task only: it is never handed out twice.

    One long-lived worker thread starts and closes kernels. It must outlive them: a kernel is
    killed when the thread that started it ends (PR_SET_PDEATHSIG), which is how no kernel
    outlives a crashed owner.
    """

    def __init__(self, size: int = 2, **sandbox_kwargs: Any) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one kernel")
        self.size = size
        self._kwargs = sandbox_kwargs
        self._root = Path(tempfile.mkdtemp(prefix="analyst-pool-"))
        self._names = itertools.count()
        self._ready: queue.Queue[KernelSandbox | SandboxError] = queue.Queue()
        self._jobs: queue.Queue[tuple[str, KernelSandbox | None]] = queue.Queue()
        self._handed_out: list[KernelSandbox] = []
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="kernel-pool", daemon=True)
        self._worker.start()
        for _ in range(size):
            self._jobs.put(("start", None))

    def _work(self) -> None:
        while True:
            job, sandbox = self._jobs.get()
            if job == "stop":
                return
            if job == "close" and sandbox is not None:
                sandbox.close()
                continue
            if self._closed:  # replacements asked for before close() are not needed any more
                continue
            workspace = self._root / f"idle-{next(self._names)}"
            try:
                self._ready.put(KernelSandbox(workspace, **self._kwargs))
            except SandboxError as exc:  # handed to the next acquire(), which raises it
                self._ready.put(exc)

    def acquire(self, workspace: Path, figures_dir: Path | None = None) -> KernelSandbox:
        """A warm kernel moved to ``workspace``; a replacement starts in the background."""
        if self._closed:
            raise SandboxError("the kernel pool is closed")
        timeout = float(self._kwargs.get("startup_timeout", 60.0)) * (self.size + 1)
        try:
            item = self._ready.get(timeout=timeout)
        except queue.Empty as exc:
            raise SandboxError(f"no kernel became ready within {timeout:.0f} s") from exc
        self._jobs.put(("start", None))
        if isinstance(item, SandboxError):
            raise item
        item.repoint(workspace, figures_dir)
        self._handed_out.append(item)
        return item

    def release(self, sandbox: KernelSandbox) -> None:
        """Close a used kernel in the background (it is never reused for another task)."""
        if sandbox in self._handed_out:
            self._handed_out.remove(sandbox)
        self._jobs.put(("close", sandbox))

    def close(self) -> None:
        """Stop the worker, then close the warm kernels and any handed out and not yet closed."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(("stop", None))
        self._worker.join()
        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, KernelSandbox):
                item.close()
        for handed in self._handed_out:
            handed.close()
        # Jobs left behind by the stop (closes queued after it) still have to happen.
        while True:
            try:
                job, leftover = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job == "close" and leftover is not None:
                leftover.close()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
