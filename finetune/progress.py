"""Training progress through rich: one line per logged step with loss, seconds/step and tokens/s."""

from __future__ import annotations

import math
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from transformers import TrainerCallback


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class StepLog:
    step: int
    loss: float
    learning_rate: float
    seconds_per_step: float
    tokens_per_second: float
    tokens: int


@dataclass
class TrainingSummary:
    """Measured over the whole run: what docs/TRAINING.md reports."""

    steps: int = 0
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    cpu_seconds_per_step: float = field(default=0.0, metadata={"help": "process CPU time (all threads)"})
    tokens: int = 0
    tokens_per_second: float = 0.0
    final_loss: float | None = None
    peak_rss_mb: float = 0.0
    log: list[StepLog] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProgressPrinter(TrainerCallback):
    """Prints each logged step and keeps the figures for ``train_summary.json``.

    Stops the run at the first step whose loss or gradient norm is not finite: from there on every
    weight the optimizer touches is NaN, and trl logs a loss of 0.0 that looks like convergence.
    """

    def __init__(self, console: Any) -> None:
        self.console = console
        self.summary = TrainingSummary()
        self.diverged: str | None = None  # what went non-finite, and at which step
        self._start = self._last_time = self._cpu_start = 0.0
        self._first_step = self._last_step = 0
        self._last_tokens = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = self._last_time = time.monotonic()
        self._cpu_start = time.process_time()  # less sensitive than wall time to other load on the box
        self._first_step = self._last_step = state.global_step
        self.console.print(f"[bold]training[/] {state.max_steps} steps from step {state.global_step}")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        now = time.monotonic()
        tokens = int(logs.get("num_tokens", 0))  # cumulative since this process started training
        steps = max(state.global_step - self._last_step, 1)
        elapsed = max(now - self._last_time, 1e-9)
        entry = StepLog(
            step=state.global_step,
            loss=float(logs["loss"]),
            learning_rate=float(logs.get("learning_rate", 0.0)),
            seconds_per_step=elapsed / steps,
            tokens_per_second=(tokens - self._last_tokens) / elapsed,
            tokens=tokens,
        )
        self.summary.log.append(entry)
        self._last_time, self._last_step, self._last_tokens = now, state.global_step, tokens
        self.console.print(
            f"step {entry.step}/{state.max_steps}  loss {entry.loss:.4f}  lr {entry.learning_rate:.2e}  "
            f"{entry.seconds_per_step:.1f} s/step  {entry.tokens_per_second:.0f} tok/s"
        )
        for name in ("loss", "grad_norm"):
            value = logs.get(name)
            if self.diverged is None and value is not None and not math.isfinite(float(value)):
                self.diverged = f"the {name.replace('_', ' ')} is {value} at step {state.global_step}"
                control.should_training_stop = True
                control.should_save = False  # this step's weights may be NaN: no checkpoint to resume from
                self.console.print(f"[bold red]stopping[/]: {self.diverged}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        summary = self.summary
        summary.seconds = round(time.monotonic() - self._start, 2)
        summary.steps = state.global_step - self._first_step
        summary.seconds_per_step = round(summary.seconds / max(summary.steps, 1), 2)
        summary.cpu_seconds_per_step = round(
            (time.process_time() - self._cpu_start) / max(summary.steps, 1), 2
        )
        summary.tokens = summary.log[-1].tokens if summary.log else 0
        summary.tokens_per_second = round(summary.tokens / max(summary.seconds, 1e-9), 1)
        summary.final_loss = summary.log[-1].loss if summary.log else None
        summary.peak_rss_mb = round(peak_rss_mb(), 1)
        self.console.print(
            f"[bold]done[/] {summary.steps} steps in {summary.seconds:.0f} s  "
            f"({summary.seconds_per_step:.1f} s/step, {summary.tokens_per_second:.0f} tok/s, "
            f"peak RSS {summary.peak_rss_mb:.0f} MiB)"
        )
