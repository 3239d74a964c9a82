"""Stop-string scanning shared by the local backends, which decode token by token."""

from __future__ import annotations


class StopScanner:
    """Accumulates decoded text and reports the first stop string, scanning only the new tail."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self._longest = max((len(s) for s in self.stops), default=0)
        self.text = ""
        self.stopped = False

    def update(self, text: str) -> bool:
        """Replace the text decoded so far; True (and truncate at the stop) once a stop string appears."""
        start = max(0, min(len(self.text), len(text)) - self._longest)
        self.text = text
        hits = [i for s in self.stops if (i := text.find(s, start)) >= 0]
        if hits:
            self.text = text[: min(hits)]
            self.stopped = True
        return self.stopped
