"""Score a finished run against its task: closed answers by tolerance, open tasks by completion criteria.

Closed tasks: each ``@name[value]`` in the final report is compared with the reference value (numbers
within the answer's tolerance, tolerant of thousands separators, ``%``, currency signs and units;
text case- and whitespace-insensitively, aliases accepted). Open tasks pass when the run produced a
report, at least one chart, ended without an unrecovered error, and the report mentions every
reference fact.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from agent.records import Outcome, Trajectory
from eval_datasets.schema import Answer, Task

if TYPE_CHECKING:
    from eval_datasets.prepare import PreparedTask

_ANSWER = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)\[([^\[\]\n]*)\]")
_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?"
)
_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00a0": " ", "\u202f": " "})


class AnswerScore(BaseModel):
    """One answer: what was expected, what the report said, and whether it counts."""

    name: str
    expected: float | str
    got: str | None = None
    parsed: float | str | None = None
    correct: bool = False
    detail: str = ""


class TaskScore(BaseModel):
    correct: bool
    partial: float = Field(description="fraction of answers (closed) or criteria (open) met")
    answers: list[AnswerScore] = Field(default_factory=list)
    criteria: dict[str, bool] = Field(default_factory=dict)
    facts_missing: list[str] = Field(default_factory=list)


def parse_answers(text: str | None) -> dict[str, str]:
    """``@name[value]`` pairs of a text; a later value for the same name wins."""
    return {name: value.strip() for name, value in _ANSWER.findall(text or "")}


def parse_number(raw: str) -> float | None:
    """The first number in ``raw``: '1,234.5 g' -> 1234.5, '12.3%' -> 12.3, '\u22120.57' -> -0.57."""
    text = raw.translate(_DASHES)
    match = _NUMBER.search(text)
    if match is None:
        return None
    token = match.group(0)
    if re.fullmatch(r"[-+]?0,\d+", token):  # '0,871': a decimal comma, not a thousands separator
        token = token.replace(",", ".")
    try:
        value = float(token.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def normalize_text(text: str) -> str:
    """Case-, whitespace- and decoration-insensitive form of a text answer."""
    text = text.translate(_DASHES).casefold().strip()
    text = text.strip("`*\"' ").rstrip(".")
    return re.sub(r"\s+", " ", text).strip()


def score_answer(answer: Answer, expected: float | str, raw: str | None) -> AnswerScore:
    """Compare one reported value with its reference."""
    score = AnswerScore(name=answer.name, expected=expected, got=raw)
    if raw is None or not raw.strip():
        score.detail = "missing"
        return score
    if answer.kind == "text":
        accepted = {normalize_text(str(expected))} | {normalize_text(a) for a in answer.aliases}
        score.parsed = normalize_text(raw)
        score.correct = score.parsed in accepted
        return score
    value = parse_number(raw)
    score.parsed = value
    if value is None:
        score.detail = "not a number"
        return score
    target = float(expected)
    score.correct = abs(value - target) <= answer.tolerance(target)
    if not score.correct:
        score.detail = f"off by {value - target:+.6g} (tolerance {answer.tolerance(target):.3g})"
    return score


def score_answers(task: Task, expected: dict[str, float | str], answers: dict[str, str]) -> list[AnswerScore]:
    """Score every answer the task asks for (missing ones are wrong)."""
    return [score_answer(a, expected[a.name], answers.get(a.name)) for a in task.answers]


def reported_answers(outcome: Outcome | None) -> dict[str, str]:
    """The answers of a run: the loop's parsed dict, completed from the report text itself."""
    if outcome is None:
        return {}
    parsed = parse_answers(outcome.report)
    return {**parsed, **outcome.answers}


def chart_count(trajectory: Trajectory) -> int:
    """Figures the kernel captured over the whole run."""
    return sum(len(s.execution.figures) for s in trajectory.steps if s.execution is not None)


def unrecovered_error(trajectory: Trajectory) -> bool:
    """True when the last executed cell failed, or the run ended on a system fault."""
    if trajectory.outcome is not None and trajectory.outcome.status == "error":
        return True
    executed = [s.execution for s in trajectory.steps if s.execution is not None]
    return bool(executed) and not executed[-1].ok


def _loose(text: str) -> str:
    # 'Weight_in_lbs', 'weight in lbs' and 'Weight-in-lbs' all name the same column.
    return re.sub(r"[\s_.\-]+", " ", text.casefold()).strip()


def missing_facts(report: str | None, facts: list[str]) -> list[str]:
    """The reference facts a report does not mention."""
    body = _loose(report or "")
    return [fact for fact in facts if _loose(fact) not in body]


def score_open(prepared: PreparedTask, trajectory: Trajectory) -> TaskScore:
    """Report, >= 1 chart, no unrecovered error, every fact mentioned; partial = share of those met."""
    outcome = trajectory.outcome
    report = outcome.report if outcome is not None and outcome.status == "report" else None
    missing = missing_facts(report, prepared.must_mention)
    criteria = {
        "report": bool(report and report.strip()),
        "chart": chart_count(trajectory) > 0,
        "no_unrecovered_error": not unrecovered_error(trajectory),
        "facts": not missing,
    }
    facts_share = 1 - len(missing) / len(prepared.must_mention) if prepared.must_mention else 1.0
    parts = [criteria["report"], criteria["chart"], criteria["no_unrecovered_error"]]
    partial = (sum(parts) + facts_share) / 4
    return TaskScore(
        correct=all(criteria.values()), partial=partial, criteria=criteria, facts_missing=missing
    )


def score_closed(prepared: PreparedTask, trajectory: Trajectory) -> TaskScore:
    """All answers within tolerance = correct; partial = share of answers right."""
    outcome = trajectory.outcome
    answers = reported_answers(outcome) if outcome is not None and outcome.status == "report" else {}
    scores = score_answers(prepared.task, prepared.expected, answers)
    right = sum(s.correct for s in scores)
    return TaskScore(correct=right == len(scores), partial=right / len(scores), answers=scores)


def score_task(prepared: PreparedTask, trajectory: Trajectory) -> TaskScore:
    """Score one finished run of ``prepared``."""
    if prepared.task.kind == "closed":
        return score_closed(prepared, trajectory)
    return score_open(prepared, trajectory)
