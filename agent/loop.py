"""The agent loop: generate -> extract code -> execute -> record -> stop?

Faults of the model (bad code, an exception in the cell, no code at all) are recorded on the step
and fed back as the next user message. Faults of the system (the backend is down, the sandbox cannot
start) raise. The loop never prints: progress goes through ``LoopCallbacks``.
"""

from __future__ import annotations

import ast
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import pandas as pd

from agent import prompts
from agent.backends.base import Backend, GenerationConfig, Reply
from agent.backends.stops import repetition_cut
from agent.check import answer_check, typed_in
from agent.hints import Read, error_hint, read_after
from agent.records import Message, Outcome, Status, Step, TrajectoryWriter
from sandbox.result import ExecutionResult


@dataclass
class RunConfig:
    """Limits and settings of one run."""

    max_turns: int = field(default=30, metadata={"help": "stop after this many model replies"})
    time_budget_s: float = field(default=1800.0, metadata={"help": "wall-clock budget for the whole run"})
    cell_timeout_s: float = field(default=120.0, metadata={"help": "per-cell timeout before interrupting"})
    observation_chars: int = field(default=4000, metadata={"help": "cell output shown to the model"})
    repeat_error_limit: int = field(
        default=3,
        metadata={
            "help": "the same cell failing the same way this often in a run: ask once for the report "
            "(or stop, if no cell has worked yet)"
        },
    )
    resample: int = field(
        default=2,
        metadata={
            "help": "when a reply resends a failure (_CodeRunner.failed_before), draw up to this many "
            "other replies (sampled at resample_temperature, seeded by the turn) before running it; 0 = never"
        },
    )
    resample_temperature: float = field(default=0.7, metadata={"help": "temperature of those draws"})
    answer_checks: int = field(
        default=2,
        metadata={
            "help": "send a final report back at most this often for asked answers it leaves out or that "
            "no output shows (agent/check.py); the same report is never sent back twice"
        },
    )
    generation: GenerationConfig = field(
        default_factory=lambda: GenerationConfig(
            stop=[prompts.CODE_STOP, "\nOutput:\n```"], max_line_repeats=4
        ),
        metadata={"help": "sampling settings for every reply"},
    )


class LoopCallbacks:
    """Hooks for display; every method is optional."""

    def on_generate(self, turn: int) -> None: ...
    def on_reply(self, turn: int, reply: Reply) -> None: ...
    def on_execute(self, turn: int, code: str) -> None: ...
    def on_step(self, step: Step) -> None: ...


class _CodeRunner:
    """Executes cells; counts each failure (same cell, same error) and notices repeated cells.

    Failures are counted over the whole run, not only in a row: a small model that alternates a
    failing cell with a harmless one (print the columns, fail, print the columns, ...) is as stuck
    as one that sends the failing cell again at once.
    """

    def __init__(
        self,
        sandbox,
        config: RunConfig,
        tables: dict[str, pd.DataFrame] | None = None,
        asked: list[str] | None = None,
    ):
        self.sandbox = sandbox
        self.config = config
        self.tables = tables or {}
        self.failures: Counter[tuple[str, str]] = Counter()
        self.outputs: dict[str, tuple[int, str]] = {}  # cell -> (turn it last ran, its output)
        self.failed_cells: set[str] = set()  # every cell that raised, as cell_key() writes it
        self.failed_lines: set[str] = set()  # the line each of those raised on (code_lines form)
        self.ran_lines: set[str] = set()  # every line of every cell run so far
        self.errors = 0
        self.successes = 0
        self.seen: list[str] = []  # every output so far, to check the report's answers against
        self.checked: list[str] = []  # the reports sent back by the answer check
        self.asked = asked or []  # the @name answers the question asks for
        self.read: Read | None = None  # the last file read, when it dropped the header row

    def run(self, code: str, turn: int) -> tuple[ExecutionResult, str]:
        result = self.sandbox.execute(code, timeout=self.config.cell_timeout_s)
        self.read = read_after(code, self.read)
        self.ran_lines.update(code_lines(code))
        observation = result.observation(self.config.observation_chars)
        if not typed_in(code):  # numbers typed into a cell are no evidence for an answer
            self.seen.append(observation)
        key = code.strip()
        earlier = self.outputs.get(key)
        self.outputs[key] = (turn, observation)
        if result.ok:
            self.successes += 1
            if earlier is not None and earlier[1] == observation:
                observation += "\n" + prompts.NOTE_SAME_CELL.format(turn=earlier[0])
            return result, observation
        self.errors += 1
        self.failed_cells.add(cell_key(code))
        if result.error is not None and (line := failing_line(code, result.error.traceback)):
            self.failed_lines.add(line)
        failure = (key, _failure_kind(result))
        self.failures[failure] += 1
        hint = error_hint(result.error, self.tables, self.read) if result.error is not None else None
        if hint:
            observation += "\n" + hint
        if 2 <= self.failures[failure] < self.config.repeat_error_limit:
            key_error = result.error is not None and result.error.ename == "KeyError"
            observation += "\n" + (
                prompts.NUDGE_REPEATED_KEY_ERROR if key_error else prompts.NUDGE_REPEATED_ERROR
            )
        return result, observation

    def failed_before(self, code: str | None) -> bool:
        """Whether ``code`` resends a failure: a cell that already raised (comments and layout aside),
        or one that reaches a line that raised before with nothing above it that has not run before
        (the failing lines cut out of their cell, behind the same imports: it fails the same way)."""
        if code is None:
            return False
        if cell_key(code) in self.failed_cells:
            return True
        lines = code_lines(code)
        for i, line in enumerate(lines):
            if line in self.failed_lines:
                return all(earlier in self.ran_lines for earlier in lines[:i])
        return False

    @property
    def stuck(self) -> bool:
        return max(self.failures.values(), default=0) >= self.config.repeat_error_limit


def cell_key(code: str) -> str:
    """A cell without its comments and layout, so that a resent cell is known when only those differ."""
    try:
        return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError):
        return code.strip()


def _statement_line(line: str) -> str | None:
    """A line stripped, or None for a blank or comment-only one: the one rule by which ``code_lines``
    and ``failing_line`` read lines, so a failing line is found among a later cell's lines."""
    stripped = line.strip()
    return stripped if stripped and not stripped.startswith("#") else None


def code_lines(code: str) -> list[str]:
    """A cell's lines, stripped, without blank and comment-only lines."""
    return [s for line in code.splitlines() if (s := _statement_line(line))]


_CELL_FRAME = re.compile(r"^\s*Cell In\[(\d+)\], line (\d+)", re.MULTILINE)


def failing_line(code: str, traceback: str) -> str | None:
    """The line of ``code`` an error was raised on (its innermost frame in this cell), stripped."""
    frames = _CELL_FRAME.findall(traceback)
    if not frames:
        return None
    cell = frames[0][0]  # the outermost frame is the cell that ran; later ones may be earlier cells'
    number = int([line for c, line in frames if c == cell][-1])
    lines = code.splitlines()
    return _statement_line(lines[number - 1]) if 1 <= number <= len(lines) else None


def _failure_kind(result: ExecutionResult) -> str:
    """What went wrong, without the parts that change on every run (cell numbers, timings)."""
    if result.error is not None:
        return f"{result.error.ename}: {result.error.evalue}"
    return "timed out" if result.timed_out else "kernel restarted"


def run_loop(
    backend: Backend,
    sandbox,
    writer: TrajectoryWriter,
    config: RunConfig,
    callbacks: LoopCallbacks | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> Outcome:
    """Run turns until a final report or a limit; every step is written as soon as it ends.

    ``tables`` (a sample of each input table, by file name) lets failed cells get hints that name
    the real columns (agent/hints.py).
    """
    callbacks = callbacks or LoopCallbacks()
    messages = list(writer.trajectory.header.messages)
    asked = prompts.asked_answers(writer.trajectory.header.question)
    runner = _CodeRunner(sandbox, config, tables, asked)
    started = time.monotonic()
    status: Status = "max_turns"
    wrap_up_turn: int | None = None
    for turn in range(1, config.max_turns + 1):
        if time.monotonic() - started > config.time_budget_s:
            status = "time_budget"
            break
        reply, redrawn = _generate(backend, messages, config, callbacks, turn, runner)
        step = _act(reply, turn, runner, writer.trajectory.steps, config, callbacks)
        step.redrawn = redrawn
        stop = None if step.step_kind == "report" else _stop_reason(step, runner)
        if wrap_up_turn is not None and step.step_kind != "report":
            stop = stop or "repeated_error"  # asked for the report, got something else
        elif stop == "repeated_error" and runner.successes:
            # Stuck on one cell after earlier cells worked: their outputs may hold the answer, so
            # ask once for the report instead of dropping the run.
            step.observation += "\n" + prompts.WRAP_UP_STUCK
            wrap_up_turn, stop = turn, None
        writer.step(step)
        callbacks.on_step(step)
        messages.append(Message(role="assistant", content=reply.text))
        if step.step_kind == "report":
            status = "report"
            break
        messages.append(Message(role="user", content=step.observation))
        if stop is not None:
            status = stop
            break
    outcome = summarize(
        writer.trajectory.steps, status, time.monotonic() - started, runner.errors, asked=asked
    )
    outcome.wrap_up_turn = wrap_up_turn
    return outcome


def _generate(
    backend: Backend, messages, config: RunConfig, callbacks: LoopCallbacks, turn: int, runner: _CodeRunner
) -> tuple[Reply, int]:
    """The turn's reply, and how many other replies were drawn because it resent a failed cell.

    Greedy decoding is deterministic: a small model that resends a failing cell once will resend it
    every time it sees the same conversation, whatever the hint says. Sampling a few other replies
    (seeded, so a run can be repeated) gives it a way out; the totals of every draw are kept.
    """
    callbacks.on_generate(turn)
    reply = _draw(backend, messages, config.generation)
    redrawn = 0
    limit = 0 if getattr(backend, "fixed_replies", False) else config.resample
    while redrawn < limit and runner.failed_before(prompts.extract_code(reply.text)):
        redrawn += 1
        seed = (config.generation.seed or 0) * 10_000 + turn * 10 + redrawn
        generation = replace(config.generation, temperature=config.resample_temperature, seed=seed)
        again = _draw(backend, messages, generation)
        again.seconds += reply.seconds
        again.prompt_tokens += reply.prompt_tokens
        again.completion_tokens += reply.completion_tokens
        reply = again
    callbacks.on_reply(turn, reply)
    return reply, redrawn


def _draw(backend: Backend, messages, generation: GenerationConfig) -> Reply:
    started = time.monotonic()
    reply = backend.generate(messages, generation)
    # backends without a token loop (a server, a script) return whole replies: cut them here too
    cut = repetition_cut(reply.text, generation.max_line_repeats)
    if cut is not None:
        reply.text, reply.finish_reason = reply.text[:cut], "repetition"
    if reply.finish_reason in ("stop", "repetition"):
        reply.text = prompts.close_fence(reply.text)
    if not reply.seconds:
        reply.seconds = time.monotonic() - started
    return reply


def _act(reply: Reply, turn: int, runner: _CodeRunner, history: list[Step], config, callbacks) -> Step:
    """Decide what a reply is (report, code, or neither) and carry it out."""
    text = reply.text
    code = prompts.extract_code(text)
    report = prompts.extract_report(text)
    step = Step(
        index=turn,
        step_kind="report",
        model_text=text,
        generation_seconds=reply.seconds,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
    )
    if report is not None and (code is None or _code_only_inside(text, report)):
        if not runner.successes:
            # A report before any cell ran cannot rest on the data: small models do this on turn 1,
            # and after a run of failed cells, which "you have not run any code" would misdescribe.
            nudge = prompts.NUDGE_REPORT_AFTER_ERRORS if runner.errors else prompts.NUDGE_PREMATURE_REPORT
            return _nudge(step, history, nudge)
        if _may_check(report, turn, runner, config) and (
            note := answer_check(report, runner.seen, runner.asked)
        ):
            # Answers that no output supports were made up or mis-copied, or the report forgot some
            # the question asks for: a chance to compute and write them. A small model often drops
            # the @name[value] form from the report it sends again, so a changed report may go back.
            runner.checked.append(report)
            step.step_kind, step.observation = "check", note
        return step
    if code is None and runner.checked and _answers_alone(text, runner.asked):
        # The check asked to send the report again with its answers; a small model often sends only
        # the @name[value] lines, at once or after a cell that computes them. They amend the report
        # sent back last (summarize puts them in).
        return step
    if code is None:
        return _nudge(step, history, prompts.NUDGE_NO_CODE)
    callbacks.on_execute(turn, code)
    result, observation = runner.run(code, turn)
    if report is not None:
        observation += "\n(The report was written before this output was seen: check it, then send the final report again.)"
    step.step_kind, step.code, step.execution = "code", code, result
    step.execution_seconds = result.duration
    step.observation = prompts.observation_message(observation, turn, config.max_turns)
    return step


def _answers_alone(text: str, asked: list[str]) -> bool:
    """A reply with no report heading that gives at least one of the asked ``@name[value]`` answers."""
    return bool(set(prompts.parse_answers(text)) & set(asked))


def _may_check(report: str, turn: int, runner: _CodeRunner, config: RunConfig) -> bool:
    """Whether the answer check may send ``report`` back: checks left, a report it has not sent back
    before, and a turn left to answer it in (on the last turn it would only turn a report into none)."""
    fresh = report not in runner.checked and not runner.stuck
    return fresh and len(runner.checked) < config.answer_checks and turn < config.max_turns


def _nudge(step: Step, history: list[Step], message: str) -> Step:
    """One corrective message; a second reply in a row without runnable code ends the run."""
    nudged_before = bool(history) and history[-1].step_kind == "nudge"
    step.step_kind = "no_code" if nudged_before else "nudge"
    step.observation = message
    return step


def _code_only_inside(text: str, report: str) -> bool:
    """True when every code block sits inside the report (an example, not a request to run)."""
    return prompts.extract_code(text[: len(text) - len(report)]) is None


def _stop_reason(step: Step, runner: _CodeRunner) -> Status | None:
    if step.step_kind == "no_code":
        return "no_code"
    if runner.stuck:
        return "repeated_error"
    return None


def summarize(
    steps: list[Step],
    status: Status,
    wall_seconds: float,
    errors: int = 0,
    detail: str = "",
    asked: list[str] | None = None,
) -> Outcome:
    """The run's outcome from its steps; the report of a ``no_code`` run is its last words, and a
    report of bare answers sent after a check is the report sent back with those answers put in.

    ``asked`` is the question's ``@name`` answers; when it is known to be none (an open question),
    answers the model wrote anyway are not answers, and the report gets them as plain text.
    """
    last = steps[-1] if steps else None
    report = None
    if last is not None and status == "report":
        report = prompts.extract_report(last.model_text)
        if report is None and (checks := [step for step in steps[:-1] if step.step_kind == "check"]):
            report = prompts.amend_report(
                prompts.extract_report(checks[-1].model_text) or "", last.model_text
            )
    elif last is not None and status == "no_code":
        report = last.model_text.strip()
    if report is not None and asked is not None and not asked:
        report = prompts.plain_report(report)
    return Outcome(
        status=status,
        report=report,
        answers=prompts.parse_answers(report or ""),
        turns=len(steps),
        wall_seconds=round(wall_seconds, 3),
        prompt_tokens=sum(s.prompt_tokens for s in steps),
        completion_tokens=sum(s.completion_tokens for s in steps),
        errors=errors or sum(1 for s in steps if s.execution is not None and not s.execution.ok),
        detail=detail,
    )
