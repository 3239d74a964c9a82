"""The scorer: number parsing, tolerance, text aliases, open-task criteria."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.records import Header, Outcome, Step, Trajectory
from eval_datasets.prepare import PreparedTask
from eval_datasets.schema import Answer, Task
from eval_datasets.scoring import (
    missing_facts,
    parse_number,
    reported_answers,
    score_answer,
    score_answers,
    score_task,
)
from sandbox.result import CellError, DisplayItem, ExecutionResult


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("4201.8", 4201.8),
        ("4,201.75 g", 4201.75),
        ("$3,457.54", 3457.54),
        ("9.68%", 9.68),
        ("\u22120.568", -0.568),
        ("-0.868 (strong, negative)", -0.868),
        ("about 12 hours", 12.0),
        ("1.2e3", 1200.0),
        ("0,871", 0.871),
        ("no idea", None),
    ],
)
def test_parse_number(raw: str, value: float | None) -> None:
    assert parse_number(raw) == value


def test_number_within_stated_rounding_is_accepted() -> None:
    answer = Answer(name="mean_mass", decimals=1)
    assert score_answer(answer, 4201.754385964912, "4201.8").correct
    assert score_answer(answer, 4201.754385964912, "4,201.754 grams").correct  # more decimals are fine
    assert not score_answer(answer, 4201.754385964912, "4201.7").correct  # truncated, not rounded
    wrong = score_answer(answer, 4201.754385964912, "4202.0")
    assert not wrong.correct and "off by" in wrong.detail
    # A true half: both roundings pass, even when the binary float sits just below the half.
    two = Answer(name="m", decimals=2)
    assert score_answer(two, 60.545, "60.54").correct and score_answer(two, 60.545, "60.55").correct
    counts = Answer(name="n", decimals=0)
    assert score_answer(counts, 37.0, "37").correct and not score_answer(counts, 37.0, "38").correct


def test_explicit_tolerances() -> None:
    assert score_answer(Answer(name="acc", decimals=1, abs_tol=0.3), 72.26, "72.5").correct
    assert not score_answer(Answer(name="acc", decimals=1, abs_tol=0.3), 72.26, "72.6").correct
    relative = Answer(name="r", decimals=0, rel_tol=0.01)
    assert score_answer(relative, 12051.0, "12100").correct
    assert not score_answer(relative, 12051.0, "12200").correct


def test_text_answers_ignore_case_space_and_accept_aliases() -> None:
    answer = Answer(name="day", kind="text", aliases=["Saturday"])
    assert score_answer(answer, "Sat", " sat ").correct
    assert score_answer(answer, "Sat", "**SATURDAY**").correct
    assert score_answer(Answer(name="animal", kind="text"), "Little brown bat", "little  Brown bat.").correct
    assert not score_answer(answer, "Sat", "Sun").correct


def test_missing_and_non_numeric_answers_are_wrong() -> None:
    task = Task(
        id="t/two",
        dataset="t",
        kind="closed",
        question="Report @a[value] and @b[value].",
        answers=[Answer(name="a", decimals=2), Answer(name="b", decimals=0)],
        reference_code="a = 1\nb = 2",
    )
    scores = score_answers(task, {"a": 1.0, "b": 2.0}, {"a": "one"})
    assert [s.correct for s in scores] == [False, False]
    assert scores[0].detail == "not a number" and scores[1].detail == "missing"


def test_report_text_is_a_fallback_for_parsed_answers() -> None:
    outcome = Outcome(status="report", report="## Final Report\n@a[1.5]\n@b[2]", answers={"b": "3"})
    assert reported_answers(outcome) == {"a": "1.5", "b": "3"}


def test_facts_match_loosely_on_separators() -> None:
    report = "Heavier cars (weight in lbs) get fewer Miles per gallon."
    assert missing_facts(report, ["Weight_in_lbs", "Miles_per_Gallon", "Origin"]) == ["Origin"]


def _trajectory(steps: list[Step], outcome: Outcome) -> Trajectory:
    return Trajectory(header=Header(question="q", model="m", backend="b"), steps=steps, outcome=outcome)


def _open_task(tmp_path: Path) -> PreparedTask:
    task = Task(id="t/open", dataset="t", kind="open", question="What drives it?", must_mention=["carat"])
    return PreparedTask(
        task=task, split="train", csv_path=tmp_path / "t.csv", must_mention=["carat", "price"]
    )


def _step(index: int, execution: ExecutionResult) -> Step:
    return Step(
        index=index, step_kind="code", model_text="```python\n...\n```", code="...", execution=execution
    )


def test_open_task_passes_with_report_chart_recovery_and_facts(tmp_path: Path) -> None:
    figure = DisplayItem(mime="image/png", path="figures/fig-1.png")
    steps = [
        _step(0, ExecutionResult(error=CellError(ename="KeyError", evalue="'x'"))),
        _step(1, ExecutionResult(displays=[figure])),
    ]
    report = "## Final Report\nPrice rises steeply with carat."
    score = score_task(_open_task(tmp_path), _trajectory(steps, Outcome(status="report", report=report)))
    assert score.correct and score.partial == 1.0
    assert score.criteria == {"report": True, "chart": True, "no_unrecovered_error": True, "facts": True}


def test_open_task_fails_each_criterion(tmp_path: Path) -> None:
    steps = [_step(0, ExecutionResult(error=CellError(ename="KeyError", evalue="'x'")))]
    outcome = Outcome(status="report", report="## Final Report\nPrices vary.")
    score = score_task(_open_task(tmp_path), _trajectory(steps, outcome))
    assert not score.correct
    assert score.criteria == {"report": True, "chart": False, "no_unrecovered_error": False, "facts": False}
    assert score.facts_missing == ["carat"]
    assert score.partial == pytest.approx((1 + 0 + 0 + 0.5) / 4)


def test_closed_answers_count_only_when_the_run_reported(tmp_path: Path) -> None:
    task = Task(
        id="t/c",
        dataset="t",
        kind="closed",
        question="Report @n[value].",
        answers=[Answer(name="n", decimals=0)],
        reference_code="n = 3",
    )
    prepared = PreparedTask(task=task, split="train", csv_path=tmp_path / "t.csv", expected={"n": 3.0})
    done = score_task(prepared, _trajectory([], Outcome(status="report", report="@n[3]", answers={"n": "3"})))
    assert done.correct and done.partial == 1.0
    cut = score_task(prepared, _trajectory([], Outcome(status="max_turns", answers={"n": "3"})))
    assert not cut.correct and cut.partial == 0.0
