"""The typed record of one executed cell, and how it reads to a model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

TRUNCATION_MARKER = "\n... [{omitted} characters omitted] ...\n"


class CellError(BaseModel):
    """An exception raised by the cell: name, message and an ANSI-free traceback."""

    ename: str
    evalue: str
    traceback: str = ""


class DisplayItem(BaseModel):
    """One rich output: a saved figure (``path``) or text such as HTML (``text``)."""

    mime: str
    path: str | None = None
    text: str | None = None
    width: int | None = None
    height: int | None = None
    description: str = ""


class ExecutionResult(BaseModel):
    """Everything one cell produced. Text fields hold the output up to the sandbox's keep cap."""

    kind: Literal["execution"] = "execution"
    code: str = ""
    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    displays: list[DisplayItem] = Field(default_factory=list)
    error: CellError | None = None
    timed_out: bool = False
    kernel_restarted: bool = False
    duration: float = 0.0
    notes: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and not self.kernel_restarted

    @property
    def figures(self) -> list[str]:
        return [d.path for d in self.displays if d.path and d.mime.startswith("image/")]

    def observation(self, max_chars: int = 4000) -> str:
        """The text the model reads back: outputs, figures described in words, the error last."""
        parts: list[str] = []
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.stderr:
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        if self.result is not None:
            parts.append(self.result)
        for item in self.displays:
            if item.path:
                # figures/figure_001.png, not the absolute path: the run's folder is no business of the
                # model's, and two runs written to different folders would read different tokens
                path = Path(item.path)
                size = f" {item.width}x{item.height}" if item.width else ""
                parts.append(
                    f"[figure saved: {path.parent.name}/{path.name}{size}] {item.description}".rstrip()
                )
            elif item.text:
                parts.append(f"[{item.mime} output, {len(item.text)} characters]")
        parts.extend(f"[{note}]" for note in self.notes)
        if self.error is not None:
            parts.append(short_traceback(self.error.traceback) or f"{self.error.ename}: {self.error.evalue}")
        text = "\n".join(parts).strip()
        if not text:
            text = "[no output]"
        return truncate_middle(text, max_chars)


# A frame in an installed package: a path under site-packages, or a compiled module's source
# (``File pandas/_libs/index.pyx:172 in ...``).
_LIBRARY_FRAME = re.compile(
    r"^\s*File (?:.*?[/\\](?:site|dist)-packages[/\\]([A-Za-z0-9_]+)|([A-Za-z0-9_]+)[/\\]\S*\.(?:pyx|pxi|pxd)\b)"
)
_CHAINED = re.compile(
    r"\n+(?:The above exception was the direct cause of the following exception:|"
    r"During handling of the above exception, another exception occurred:)\n+"
)


def short_traceback(traceback: str) -> str:
    """The traceback with each run of frames inside installed packages folded into one line.

    ``df.groupby('b')`` fails four pandas frames deep; the model can act only on its own cell's
    lines and the error, and a small model reads the library's internals as something to fix.
    A chained exception raised wholly inside a package (``df['x']``: pandas' own KeyError, then the
    one it re-raises from the cell's line) keeps only the part that shows the cell. The record keeps
    the full traceback.
    """
    parts = _CHAINED.split(traceback)
    if len(parts) > 1:
        parts = [p for p in parts[:-1] if "Cell In[" in p] + parts[-1:]
    return "\n\nThe above exception led to the following one:\n\n".join(_fold(p) for p in parts)


def _fold(traceback: str) -> str:
    kept: list[str] = []
    folded: list[str] = []  # packages of the current run of library frames
    for block in traceback.split("\n\n"):
        match = _LIBRARY_FRAME.match(block)
        if match:
            folded.append(match.group(1) or match.group(2))
            continue
        if folded:
            kept.append(_folded_line(folded))
            folded = []
        kept.append(block)
    if folded:
        kept.append(_folded_line(folded))
    return "\n\n".join(kept)


def _folded_line(packages: list[str]) -> str:
    names = ", ".join(dict.fromkeys(packages))
    return f"  [{len(packages)} frame{'s' if len(packages) > 1 else ''} inside {names}]"


def truncate_middle(text: str, max_chars: int) -> str:
    """Keep the head and the tail of ``text`` with a marker saying how much was cut."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    head = max_chars * 2 // 3
    tail = max_chars - head
    omitted = len(text) - head - tail
    return text[:head] + TRUNCATION_MARKER.format(omitted=omitted) + text[-tail:]
