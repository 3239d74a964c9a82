"""The eval harness end to end: a real kernel runs scripted replies; metrics, resume, workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.backends.scripted import ScriptedBackend
from agent.loop import RunConfig
from eval_datasets.harness import (
    BackendSource,
    EvalConfig,
    read_results,
    run_config_for,
    run_eval,
    task_question,
)
from eval_datasets.prepare import PreparedTask, prepared_tasks
from eval_datasets.schema import DatasetSpec
from eval_datasets.summary import metrics, write_summary

TOY = {
    "name": "toy",
    "csv": "toy.csv",
    # The CSV is written by the test before preparing, so this loader is never called.
    "source": {"package": "sklearn", "item": "load_iris", "loader": "written by the test"},
    "licence": "CC0-1.0",
    "description": "ten rows",
    "split": "train",
}
READ = 'import pandas as pd\ndf = pd.read_csv("toy.csv")\n'
TASKS = [
    {
        "id": "toy/sums",
        "kind": "closed",
        "question": "Report @total[value] and @rows[value].",
        "answers": [{"name": "total", "decimals": 0}, {"name": "rows", "decimals": 0}],
        "reference_code": READ + 'total = df["x"].sum()\nrows = len(df)',
    },
    {
        "id": "toy/mean",
        "kind": "closed",
        "question": "Report @mean[value].",
        "answers": [{"name": "mean", "decimals": 2}],
        "reference_code": READ + 'mean = df["x"].mean()',
    },
    {
        "id": "toy/max",
        "kind": "closed",
        "question": "Report @max[value].",
        "answers": [{"name": "max", "decimals": 0}],
        "reference_code": READ + 'max = df["x"].max()',
    },
    {"id": "toy/explore", "kind": "open", "question": "Explore x with a chart.", "must_mention": ["x"]},
]
SUMS_REPLIES = [
    f'```python\n{READ}print(df["x"].sum(), len(df))\n```',
    # rows is wrong on purpose: a number the kernel printed (so no answer check), but not the row count
    "## Final Report\nThe column sums to 55.\n@total[55]\n@rows[55]",
]
EXPLORE_REPLIES = [
    "```python\nprint(undefined_name)\n```",  # an error the run recovers from
    f'```python\n{READ}import matplotlib.pyplot as plt\ndf["x"].plot()\nplt.show()\n```',
    "## Final Report\nColumn x rises steadily from 1 to 10 (see the chart).",
]


@pytest.fixture(scope="module")
def toy_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PreparedTask]:
    cache = tmp_path_factory.mktemp("cache")
    (cache / "toy").mkdir()
    (cache / "toy" / "toy.csv").write_text("x,y\n" + "".join(f"{i},{i * i}\n" for i in range(1, 11)))
    spec = DatasetSpec.model_validate({**TOY, "tasks": [{**t, "dataset": "toy"} for t in TASKS]})
    return {p.task.id: p for p in prepared_tasks(spec, cache)}


def _config(out: Path, workers: int = 1, warm: bool = True) -> EvalConfig:
    return EvalConfig(
        out=out, split="train", workers=workers, max_turns=6, time_budget_s=120, warm_kernels=warm
    )


def test_two_tasks_end_to_end(toy_tasks: dict[str, PreparedTask], tmp_path: Path) -> None:
    tasks = [toy_tasks["toy/sums"], toy_tasks["toy/explore"]]
    backend = ScriptedBackend(SUMS_REPLIES + EXPLORE_REPLIES)
    results = run_eval(tasks, _config(tmp_path), BackendSource(lambda: backend), RunConfig())
    assert not backend.queue, "every scripted reply was used"
    sums, explore = results
    assert (sums.status, sums.correct, sums.partial, sums.turns) == ("report", False, 0.5, 2)
    assert [(a.name, a.correct) for a in sums.answers] == [("total", True), ("rows", False)]
    assert (explore.status, explore.correct, explore.turns, explore.errors) == ("report", True, 3, 1)
    assert explore.recovered and explore.charts == 1
    assert explore.criteria == {"report": True, "chart": True, "no_unrecovered_error": True, "facts": True}

    overall = metrics(results)
    assert overall["completion"] == 1.0 and overall["reported"] == 1.0
    assert overall["correct"] == 0.5
    assert overall["partial"] == pytest.approx(0.75)
    assert overall["runs_with_errors"] == 1 and overall["error_recovery"] == 1.0
    assert overall["mean_turns"] == 2.5
    assert overall["mean_tokens"] > 0 and overall["mean_wall_s"] > 0

    for task_id in ("toy__sums", "toy__explore"):
        assert (tmp_path / "runs" / task_id / "trajectory.jsonl").is_file()
        assert (tmp_path / "runs" / task_id / "report.md").is_file()
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2

    summary = write_summary(tmp_path, results, {"split": "train"})
    assert json.loads((tmp_path / "summary.json").read_text())["overall"]["correct"] == 0.5
    assert summary["by_dataset"]["toy"]["tasks"] == 2 and summary["by_split"]["train"]["tasks"] == 2
    assert summary["by_kind"]["closed"]["partial"] == 0.5 and summary["by_kind"]["open"]["correct"] == 1.0
    assert summary["statuses"] == {"report": 2}
    page = (tmp_path / "summary.html").read_text()
    assert page.count("data:image/png;base64,") == 10 and "toy/explore" in page


def test_resume_skips_finished_and_retries_failed(toy_tasks: dict[str, PreparedTask], tmp_path: Path) -> None:
    sums, explore = toy_tasks["toy/sums"], toy_tasks["toy/explore"]
    # First pass: sums finishes; explore's backend runs dry, a system fault that must be retried.
    first = ScriptedBackend(SUMS_REPLIES)
    # Cold kernels here (each run starts its own), warm pool kernels in the other tests.
    results = run_eval(
        [sums, explore], _config(tmp_path, warm=False), BackendSource(lambda: first), RunConfig()
    )
    assert [r.status for r in results] == ["report", "error"]
    finished_line = (tmp_path / "results.jsonl").read_text().splitlines()[0]

    second = ScriptedBackend(EXPLORE_REPLIES)
    results = run_eval([sums, explore], _config(tmp_path), BackendSource(lambda: second), RunConfig())
    assert not second.queue and len(second.calls) == 3, "only the failed task ran again"
    assert [r.status for r in results] == ["report", "report"]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3 and lines[0] == finished_line

    idle = ScriptedBackend([])
    run_eval([sums, explore], _config(tmp_path), BackendSource(lambda: idle), RunConfig())
    assert idle.calls == [] and len(read_results(tmp_path)) == 2


def test_parallel_workers_each_get_a_backend(toy_tasks: dict[str, PreparedTask], tmp_path: Path) -> None:
    tasks = [toy_tasks["toy/mean"], toy_tasks["toy/max"]]
    script = [
        f'```python\n{READ}print(df["x"].mean(), df["x"].max())\n```',
        "## Final Report\n@mean[5.5]\n@max[10]",
    ]
    made: list[ScriptedBackend] = []

    def factory() -> ScriptedBackend:
        made.append(ScriptedBackend(list(script)))
        return made[-1]

    results = run_eval(tasks, _config(tmp_path, workers=2), BackendSource(factory), RunConfig())
    assert [(r.task_id, r.correct) for r in results] == [("toy/mean", True), ("toy/max", True)]
    assert len(made) == 2 and all(len(b.calls) == 2 for b in made)


def test_question_states_answer_format_and_limits_resolve(toy_tasks: dict[str, PreparedTask]) -> None:
    sums = toy_tasks["toy/sums"]
    question = task_question(sums)
    assert question.startswith(sums.task.question)
    assert question.endswith("in place of the dots: @total[...] (an integer); @rows[...] (an integer).")
    assert task_question(toy_tasks["toy/explore"]) == "Explore x with a chart."
    limited = sums.model_copy(deep=True)
    limited.task.limits.max_turns = 3
    base = RunConfig(max_turns=30, time_budget_s=900)
    assert run_config_for(limited, base, EvalConfig(out=Path("o"))).max_turns == 3
    override = run_config_for(limited, base, EvalConfig(out=Path("o"), max_turns=7, time_budget_s=60))
    assert (override.max_turns, override.time_budget_s) == (7, 60)
    assert run_config_for(sums, base, EvalConfig(out=Path("o"))).time_budget_s == 900


def test_interrupt_stops_the_batch_and_the_task_reruns(
    toy_tasks: dict[str, PreparedTask], tmp_path: Path
) -> None:
    def ctrl_c(messages: object) -> str:
        raise KeyboardInterrupt  # where SIGINT lands while the model generates

    tasks = [toy_tasks["toy/mean"], toy_tasks["toy/max"]]
    stopped = ScriptedBackend([ctrl_c])
    results = run_eval(tasks, _config(tmp_path), BackendSource(lambda: stopped), RunConfig())
    assert [(r.task_id, r.status) for r in results] == [("toy/mean", "interrupted")], "toy/max never started"

    script = [f'```python\n{READ}print(df["x"].mean(), df["x"].max())\n```', "## Final Report\n@mean[5.5]"]
    resumed = ScriptedBackend(script + script[:1] + ["## Final Report\n@max[10]"])
    results = run_eval(tasks, _config(tmp_path), BackendSource(lambda: resumed), RunConfig())
    assert [(r.task_id, r.status, r.correct) for r in results] == [
        ("toy/mean", "report", True),
        ("toy/max", "report", True),
    ]
