"""Live progress of a run in the terminal, through the loop's callbacks (the loop itself never prints)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.syntax import Syntax

from agent.backends.base import Reply
from agent.loop import LoopCallbacks
from agent.records import Step

OUTPUT_LINES = 8


class RichProgress(LoopCallbacks):
    """Prints turn n/max, the code being run, a short output, elapsed time and tokens per second."""

    def __init__(self, max_turns: int, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.max_turns = max_turns
        self.started = time.monotonic()
        self._status = None

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:5.0f}s"

    def on_generate(self, turn: int) -> None:
        self._status = self.console.status(f"turn {turn}/{self.max_turns}: the model is writing…")
        self._status.start()

    def on_reply(self, turn: int, reply: Reply) -> None:
        if self._status is not None:
            self._status.stop()
        speed = f"{reply.tokens_per_second:.1f} tok/s" if reply.completion_tokens else ""
        self.console.rule(
            f"[bold]turn {turn}/{self.max_turns}[/]  {self._elapsed()}  "
            f"{reply.completion_tokens} tokens {speed}".rstrip(),
            align="left",
        )

    def on_execute(self, turn: int, code: str) -> None:
        lines = code.splitlines()
        shown = "\n".join(lines[:20]) + (f"\n# … {len(lines) - 20} more lines" if len(lines) > 20 else "")
        self.console.print(Syntax(shown, "python", theme="ansi_dark", background_color="default"))

    def on_step(self, step: Step) -> None:
        if step.step_kind == "report":
            self.console.print("[green]final report written[/]")
            return
        if step.execution is None:
            self.console.print(f"[yellow]{step.observation}[/]")
            return
        text = step.execution.observation(1200).splitlines()
        shown = "\n".join(text[:OUTPUT_LINES]) + ("\n…" if len(text) > OUTPUT_LINES else "")
        style = "green" if step.execution.ok else "red"
        self.console.print(
            f"[{style}]{'ok' if step.execution.ok else 'error'}[/] ({step.execution.duration:.1f}s)",
            highlight=False,
        )
        self.console.print(shown, markup=False, highlight=False)
