"""Where a reply should end early: stop strings, and a line the model keeps repeating.

The local backends decode token by token and feed the text to a ``StopScanner``, so they stop as
soon as a rule fires; replies that arrive whole (a server, a script) are cut afterwards by the loop
with ``repetition_cut``.
"""

from __future__ import annotations


def repetition_cut(text: str, limit: int) -> int | None:
    """The end of the first copy when the last ``limit`` complete non-blank lines are one line.

    Small models fall into writing one sentence over and over until the token limit; the first copy
    is kept, the rest is dropped. ``limit < 2`` turns the check off.
    """
    if limit < 2:
        return None
    repeated, copies, first_end = None, 0, None
    end = text.rfind("\n")
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end].strip()
        if line:
            if repeated is not None and line != repeated:
                break
            repeated, copies, first_end = line, copies + 1, end
        end = start - 1
    return first_end if copies >= limit else None


class StopScanner:
    """Accumulates decoded text; reports the first stop string or a run of repeated lines."""

    def __init__(self, stops: list[str], max_line_repeats: int = 0):
        self.stops = [s for s in stops if s]
        self.max_line_repeats = max_line_repeats
        self._longest = max((len(s) for s in self.stops), default=0)
        self.text = ""
        self.stopped = False
        self.repeated = False

    @property
    def active(self) -> bool:
        return bool(self.stops) or self.max_line_repeats >= 2

    def update(self, text: str) -> bool:
        """Replace the text decoded so far; True (and truncate) once it should stop."""
        old = self.text
        start = max(0, min(len(old), len(text)) - self._longest)
        self.text = text
        hits = [i for s in self.stops if (i := text.find(s, start)) >= 0]
        if hits:
            self.text = text[: min(hits)]
            self.stopped = True
        elif "\n" in text[len(old) :] and (cut := repetition_cut(text, self.max_line_repeats)) is not None:
            self.text = text[:cut]
            self.stopped = self.repeated = True
        return self.stopped
