"""Turning the kernel's iopub messages into an ExecutionResult, with bounded memory."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path
from typing import Any

from sandbox.result import CellError, DisplayItem, ExecutionResult

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
IMAGE_SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg"}
DROPPED = "\n... [{dropped} characters dropped here: output over the {cap}-character keep cap] ...\n"


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor codes."""
    return ANSI_RE.sub("", text)


def png_size(data: bytes) -> tuple[int | None, int | None]:
    """Width and height from a PNG's IHDR chunk, or (None, None) if it is not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n":
        return None, None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class CappedText:
    """A text sink that keeps the head and the tail up to ``cap`` characters and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head: list[str] = []
        self.head_len = 0
        self.tail = ""
        self.dropped = 0

    def write(self, text: str) -> None:
        if self.head_len < self.head_cap:
            take = text[: self.head_cap - self.head_len]
            self.head.append(take)
            self.head_len += len(take)
            text = text[len(take) :]
        if not text:
            return
        self.tail += text
        # Trim only when the tail is twice its cap, so a flood of tiny writes costs O(n) in all.
        if len(self.tail) > 2 * self.tail_cap:
            cut = len(self.tail) - self.tail_cap
            self.dropped += cut
            self.tail = self.tail[cut:]

    def value(self) -> str:
        if len(self.tail) > self.tail_cap:
            cut = len(self.tail) - self.tail_cap
            self.dropped += cut
            self.tail = self.tail[cut:]
        middle = DROPPED.format(dropped=self.dropped, cap=self.cap) if self.dropped else ""
        return "".join(self.head) + middle + self.tail


class OutputCollector:
    """Accumulates the outputs of one cell; figures are written to ``figures_dir`` as they arrive."""

    def __init__(self, keep_chars: int, figures_dir: Path, name_figure: Any) -> None:
        self.stdout = CappedText(keep_chars)
        self.stderr = CappedText(keep_chars)
        self.keep_chars = keep_chars
        self.figures_dir = figures_dir
        self.name_figure = name_figure
        self.result: str | None = None
        self.displays: list[DisplayItem] = []
        self.error: CellError | None = None
        self.lost_idle = False

    def handle(self, msg: dict[str, Any]) -> None:
        """Take one iopub message that belongs to the running cell."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            sink = self.stderr if content.get("name") == "stderr" else self.stdout
            sink.write(content.get("text", ""))
        elif kind == "execute_result":
            data = content.get("data", {})
            if "text/plain" in data:
                self.result = data["text/plain"][: self.keep_chars]
            self._rich(data, metadata=content.get("metadata", {}), plain_is_result=True)
        elif kind in ("display_data", "update_display_data"):
            self._rich(content.get("data", {}), metadata=content.get("metadata", {}))
        elif kind == "error":
            tb = strip_ansi("\n".join(content.get("traceback", [])))
            self.error = CellError(
                ename=content.get("ename", "Error"),
                evalue=strip_ansi(content.get("evalue", ""))[: self.keep_chars],
                traceback=tb[: self.keep_chars // 2] + tb[-self.keep_chars // 2 :]
                if len(tb) > self.keep_chars
                else tb,
            )

    def _rich(self, data: dict[str, Any], metadata: dict[str, Any], plain_is_result: bool = False) -> None:
        plain = data.get("text/plain", "")
        images = [mime for mime in IMAGE_SUFFIX if mime in data]
        for mime in images:
            self.displays.append(self._save_image(mime, data[mime], plain))
        if "text/html" in data:
            self.displays.append(DisplayItem(mime="text/html", text=data["text/html"][: self.keep_chars]))
        if plain and not images and not plain_is_result:
            # display(obj) of a plain object prints in a notebook; the model should read it too.
            self.stdout.write(plain + "\n")

    def _save_image(self, mime: str, payload: str, description: str) -> DisplayItem:
        raw = payload.encode() if mime == "image/svg+xml" else base64.b64decode(payload)
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.name_figure(IMAGE_SUFFIX[mime])
        path.write_bytes(raw)
        width, height = png_size(raw) if mime == "image/png" else (None, None)
        text = description if description.startswith("Figure with") else ""
        return DisplayItem(mime=mime, path=str(path), width=width, height=height, description=text)

    def fill(self, result: ExecutionResult) -> ExecutionResult:
        """Copy what was collected into ``result`` (and note what the keep cap dropped)."""
        result.stdout, result.stderr = self.stdout.value(), self.stderr.value()
        for name, sink in (("stdout", self.stdout), ("stderr", self.stderr)):
            if sink.dropped:
                result.notes.append(f"{sink.dropped} characters of {name} were dropped (keep cap)")
        if self.lost_idle:
            result.notes.append("the kernel's output channel was flooded: some output may be missing")
        result.result, result.displays, result.error = self.result, self.displays, self.error
        return result
