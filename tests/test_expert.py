"""The built-in expert teacher: it decides from what the kernel returns, and solves real train tasks."""

from __future__ import annotations

import pytest

from agent import prompts
from agent.backends.base import GenerationConfig
from agent.loop import RunConfig
from agent.preview import load_input, preview_text
from agent.records import Message
from agent.runner import analyze
from eval_datasets.prepare import prepared_tasks
from eval_datasets.schema import Answer, Task, load_suite
from eval_datasets.scoring import score_task
from finetune.collect import CollectConfig, select_tasks, training_messages
from finetune.expert import ExpertBackend
from finetune.expert_code import SLIPS, api_slip, wrong_word
from finetune.expert_data import error_name, format_number, parse_preview

PREVIEW = """Task: What is the mean price? Report @mean_price[value], rounded to 1 decimal.

Data files:

### shop.csv
Read with: df = pd.read_csv('shop.csv')
Shape: 10 rows x 3 columns
Columns:
  city: str
  sales: int64
  price: float64, 1 missing
First rows:
   city  sales  price
"""

TASK = Task(
    id="shop/mean-price",
    dataset="shop",
    kind="closed",
    question="What is the mean price? Report @mean_price[value], rounded to 1 decimal.",
    answers=[Answer(name="mean_price", decimals=1)],
    reference_code='import pandas as pd\ndf = pd.read_csv("shop.csv")\nmean_price = df["price"].mean()\n',
)


def _drive(expert: ExpertBackend, observation: str) -> str:
    """Replies until the report, answering every code cell with ``observation``."""
    messages = [Message(role="system", content="sys"), Message(role="user", content=PREVIEW)]
    for _ in range(10):
        text = expert.generate(messages, GenerationConfig()).text
        messages.append(Message(role="assistant", content=text))
        if prompts.extract_report(text) is not None:
            return text
        messages.append(Message(role="user", content=f"Output:\n```\n{observation}\n```"))
    raise AssertionError("the expert never reported")


def test_preview_is_parsed_into_columns():
    view = parse_preview(PREVIEW)
    assert (view.file, view.read_code, view.rows) == ("shop.csv", "pd.read_csv('shop.csv')", 10)
    assert [(c.name, c.dtype, c.missing) for c in view.columns] == [
        ("city", "str", 0),
        ("sales", "int64", 0),
        ("price", "float64", 1),
    ]


def test_report_quotes_the_value_the_kernel_printed_not_the_task():
    # Nothing in the task knows these numbers: they can only come from the observation.
    report = _drive(ExpertBackend(TASK, seed=3), "mean_price = 7.26")
    assert prompts.parse_answers(report) == {"mean_price": "7.3"}
    report = _drive(ExpertBackend(TASK, seed=3), "mean_price = 123.456")
    assert prompts.parse_answers(report) == {"mean_price": "123.5"}


def _run(seed: int, fail_the_mistake: bool) -> tuple[bool, list[str]]:
    """Drive the expert with clean outputs, or with an error right after a planned mistake."""
    expert = ExpertBackend(TASK, seed=seed)
    messages = [Message(role="system", content="sys"), Message(role="user", content=PREVIEW)]
    planned, kinds = False, []
    for _ in range(10):
        text = expert.generate(messages, GenerationConfig()).text
        kinds.append(expert.last.kind)
        if expert.last.kind == "report":
            break
        observation = "mean_price = 7.0"
        if expert.last.fix is not None:
            planned = True
            if fail_the_mistake:
                observation = "Traceback (most recent call last)\nKeyError: 'Price'"
        messages += [Message(role="assistant", content=text), Message(role="user", content=observation)]
    return planned, kinds


def test_a_planned_mistake_is_fixed_only_when_its_error_comes_back():
    planned = [seed for seed in range(30) if _run(seed, False)[0]]
    assert planned, "some seeds should plan a mistake"
    for seed in planned[:5]:
        _, clean = _run(seed, False)
        assert not any(kind.endswith("_fix") for kind in clean)
        _, failed = _run(seed, True)
        assert any(kind.endswith("_fix") for kind in failed) and failed[-1] == "report"
        assert 3 <= len(failed) <= 6


def test_error_names_and_rounding():
    assert error_name("Traceback (most recent call last)\n...\nKeyError: 'Price'") == "KeyError"
    assert error_name("NameError: name 'x' is not defined") == "NameError"
    assert error_name("mean_price = 7.0") is None
    assert format_number("4201.754385964912", 1) == "4201.8"
    assert format_number("5000.0", 0) == "5000"
    assert format_number("Gentoo", None) == "Gentoo"


def _closed_sample() -> list[tuple[str, int]]:
    """Every eighth closed train task (several datasets), each with its own seed so mistakes vary."""
    closed = [t.id for s in load_suite() if s.split == "train" for t in s.tasks if t.kind == "closed"]
    return [(task_id, i) for i, task_id in enumerate(closed[::8][:5])]


def _solve(prepared, seed: int, run_dir):
    """One expert run on a prepared task, in a real kernel."""
    return analyze(
        [prepared.csv_path],
        prepared.task.question,
        run_dir,
        ExpertBackend(prepared.task, seed),
        RunConfig(max_turns=10),
        task_id=prepared.task.id,
    )


@pytest.fixture(scope="module")
def dataset_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.mark.parametrize(("task_id", "seed"), _closed_sample())
def test_expert_solves_closed_train_tasks(task_id, seed, dataset_cache, tmp_path):
    spec = next(s for s in load_suite() if any(t.id == task_id for t in s.tasks))
    prepared = next(p for p in prepared_tasks(spec, dataset_cache) if p.task.id == task_id)
    result = _solve(prepared, seed, tmp_path / "run")
    assert result.outcome.status == "report"
    assert 3 <= result.outcome.turns <= 6
    score = score_task(prepared, result.trajectory)
    assert score.correct, [a.model_dump() for a in score.answers]


def test_wrong_words_are_guesses_the_file_does_not_have():
    assert wrong_word("DriveTrain", ["DriveTrain", "MPG"]) == "drive_train"
    assert wrong_word("Sepal.Length", ["Sepal.Length"]) == "sepal_length"
    assert wrong_word("class", ["class"]) == "classes"
    assert wrong_word("carrier", ["carrier"]) == "carriers"
    assert wrong_word("hwy", ["hwy", "hwys"]) is None  # every guess is taken


def _seed_planning(prepared, move) -> int:
    """The first seed whose expert plans ``move(expert)`` for this task."""
    message = prompts.first_user_message(
        prepared.task.question, [preview_text(load_input(prepared.csv_path))]
    )
    for seed in range(200):
        expert = ExpertBackend(prepared.task, seed)
        expert._plan(message)
        if move(expert) in expert.queue:
            return seed
    pytest.fail("no seed in 200 plans that move")


def test_a_column_named_from_the_question_is_fixed_from_the_hint(dataset_cache, tmp_path):
    """The name mistake runs in a real kernel: the loop's hint names the column the fix then uses."""
    spec = next(s for s in load_suite() if s.split == "train")
    prepared = next(p for p in prepared_tasks(spec, dataset_cache) if p.task.kind == "closed")
    seed = _seed_planning(prepared, lambda expert: expert._name_mistake)
    result = _solve(prepared, seed, tmp_path / "run")
    failed = next(s for s in result.trajectory.steps if s.execution is not None and not s.execution.ok)
    wrong = failed.execution.error.evalue.strip("'")
    assert f"Hint: `{wrong}` is not a column of {prepared.csv_path.name}." in failed.observation
    right = failed.observation.split("Did you mean `", 1)[1].split("`", 1)[0]
    fix = result.trajectory.steps[result.trajectory.steps.index(failed) + 1]
    assert fix.execution.ok and repr(right) in fix.execution.code
    assert result.outcome.status == "report" and score_task(prepared, result.trajectory).correct


@pytest.mark.parametrize("slip", [0, 1, 2], ids=["corr-with", "corr-pair", "value-as-column"])
def test_a_misused_call_is_fixed_from_the_hint(slip, dataset_cache, tmp_path, script):
    """Each API slip runs in a real kernel: the call fails, the loop hints, the fix is the task's code."""
    # 40 drills: with 15, fewer than the kinds, `strongest` (which the corr-with slip needs) may be left out
    config = CollectConfig(out=tmp_path / "c", tasks="vega-cars/drill-*", drills=40, cache=dataset_cache)
    pattern = SLIPS[slip][0]
    prepared = next(p for p in select_tasks(config) if pattern.search(p.task.reference_code))
    seed = _seed_planning(prepared, lambda expert: expert._api_slip)
    result = _solve(prepared, seed, tmp_path / "run")
    reference = prepared.task.reference_code.splitlines()
    wrong, right = next(
        pair
        for pair in zip(api_slip(prepared.task.reference_code).splitlines(), reference, strict=True)
        if pair[0] != pair[1]
    )
    steps = result.trajectory.steps
    failed = next(s for s in steps if s.execution is not None and not s.execution.ok)
    assert wrong in failed.execution.code and "\nHint: " in failed.observation  # the loop explained it
    fix = steps[steps.index(failed) + 1]
    assert fix.execution.ok and right in fix.execution.code and wrong not in fix.execution.code
    # for training, the failing reply is context only; the fix and the rest are learnt
    messages = training_messages(result.trajectory, tmp_path / "run")
    replies = [m for m in messages if m["role"] == "assistant"]
    assert [m.get("train", True) for m in replies] == [s is not failed for s in steps]
    _marks_alike(messages, script("mix_training"))
    assert result.outcome.status == "report" and score_task(prepared, result.trajectory).correct


def test_an_early_report_goes_back_to_the_answer_check_and_the_computation_follows(
    dataset_cache, tmp_path, script
):
    """The report mistake runs in a real loop: a report after the first look is sent back by the
    answer check, the next reply computes and prints the answers, and the final report is correct."""
    spec = next(s for s in load_suite() if s.split == "train")
    prepared = next(p for p in prepared_tasks(spec, dataset_cache) if p.task.kind == "closed")
    seed = _seed_planning(prepared, lambda expert: expert._early_report)
    result = _solve(prepared, seed, tmp_path / "run")
    steps = result.trajectory.steps
    check = next(s for s in steps if s.step_kind == "check")
    assert check.index == 2 and check.observation.startswith(
        (prompts.CHECK_LEFT_OUT.split("{")[0], prompts.CHECK_ANSWERS.split("{")[0])
    )
    after = steps[steps.index(check) + 1]
    assert after.execution.ok and all(f"{a.name} =" in after.execution.stdout for a in prepared.task.answers)
    assert result.outcome.status == "report" and score_task(prepared, result.trajectory).correct
    # for training, the early report is context only
    messages = training_messages(result.trajectory, tmp_path / "run")
    replies = [m for m in messages if m["role"] == "assistant"]
    assert [m.get("train", True) for m in replies] == [s is not check for s in steps]
    _marks_alike(messages, script("mix_training"))


def _marks_alike(messages: list[dict], mix_training) -> None:
    """scripts/mix_training.py, which marks older training sets from their text alone, marks the same
    replies as collect does from the trajectory."""
    bare = [{key: value for key, value in m.items() if key != "train"} for m in messages]
    assert mix_training.untrain_failed(bare) == sum(m.get("train") is False for m in messages) > 0
    assert bare == messages
