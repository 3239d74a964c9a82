"""Where a reply should end early: stop strings, and a line the model keeps repeating.

The local backends decode token by token and feed the text to a ``StopScanner``, so they stop as
soon as a rule fires; replies that arrive whole (a server, a script) are cut afterwards by the loop
with ``repetition_cut``.
"""

from __future__ import annotations

MAX_CYCLE = 3  # the longest block of lines that counts as repeating (a line, a pair, a triple)


def repetition_cut(text: str, limit: int) -> int | None:
    """The end of the first copy when the text ends in ``limit`` copies of one block of lines.

    Small models fall into writing one sentence over and over until the token limit, or two or three
    sentences in turn ("above the mean (40.41)" / "above the mean (46.34)" / ...). The first copy of
    the block is kept, the rest is dropped. Blank lines do not count. ``limit < 2`` turns it off.
    """
    if limit < 2:
        return None
    lines: list[tuple[str, int]] = []  # complete non-blank lines, last first, with where each ends
    end = text.rfind("\n")
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end].strip()
        if line:
            lines.append((line, end))
        end = start - 1
    for period in range(1, MAX_CYCLE + 1):
        if len(lines) < period * limit or len({line for line, _ in lines[:period]}) < period:
            continue  # too few lines, or a shorter cycle (period 1 already had its turn)
        run = 0
        while run < len(lines) and lines[run][0] == lines[run % period][0]:
            run += 1
        copies = run // period
        if copies >= limit:
            return lines[(copies - 1) * period][1]
    return None


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
