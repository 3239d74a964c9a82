"""Drills: generated closed questions over a train dataset, verified like the task files' own."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from agent.loop import RunConfig
from agent.runner import analyze
from eval_datasets.harness import task_question
from eval_datasets.schema import Answer, load_suite
from eval_datasets.scoring import score_task
from finetune import drills
from finetune.collect import CollectConfig, select_tasks
from finetune.expert import ExpertBackend
from finetune.expert_code import answer_prints


def _frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    size = rng.normal(50, 10, rows)
    frame = pd.DataFrame(
        {
            "name": [f"item {i}" for i in range(rows)],
            "shop": rng.choice(["north", "south", "east"], rows),
            "year": rng.choice([2019, 2020, 2021], rows),
            "size": size,
            "price": size * 3 + rng.normal(0, 5, rows),
            "rating": rng.uniform(1, 5, rows),
        }
    )
    frame.loc[::9, "rating"] = np.nan
    return frame


def _spec(name: str = "shop"):
    """A train spec to hang drills on (its tasks are not used)."""
    spec = next(s for s in load_suite() if s.split == "train")
    return spec.model_copy(update={"name": name, "csv": f"{name}.csv"})


def test_drills_are_valid_distinct_tasks_of_many_kinds():
    tasks = drills.drill_tasks(_spec(), _frame(), count=11)
    assert len(tasks) == 11
    assert len({t.id for t in tasks}) == 11
    kinds = {t.id.split("/drill-")[1].split("-")[0] for t in tasks}
    assert len(kinds) >= 6, kinds
    for task in tasks:
        assert task.id.startswith("shop/drill-") and task.kind == "closed"
        assert task.reference_code.startswith("import pandas as pd\ndf = pd.read_csv('shop.csv')\n")
        assert all(f"@{a.name}[" in task.question for a in task.answers)
    # Seeded: the same dataset and seed give the same drills, another seed others.
    assert [t.id for t in drills.drill_tasks(_spec(), _frame(), count=11)] == [t.id for t in tasks]
    assert [t.id for t in drills.drill_tasks(_spec(), _frame(), count=11, seed=1)] != [t.id for t in tasks]


def test_drill_answers_are_computed_from_the_file(tmp_path):
    frame = _frame()
    frame.to_csv(tmp_path / "shop.csv", index=False)
    prepared = drills.prepared_drills(_spec(), tmp_path / "shop.csv", count=11)
    assert len(prepared) >= 9
    checked = 0
    for p in prepared:
        code = p.task.reference_code
        pair = re.search(r"corr = df\['(\w+)'\]\.corr\(df\['(\w+)'\]\)", code)
        if pair:  # the correlation of two named columns
            a, b = pair.groups()
            assert p.expected["corr"] == pytest.approx(frame[a].corr(frame[b]))
            checked += 1
        if "isna().sum()" in code:
            assert p.expected["missing"] == frame["rating"].isna().sum()
            checked += 1
    assert checked, [p.task.id for p in prepared]


def test_a_drill_without_a_finite_answer_is_left_out(tmp_path):
    frame = _frame()
    frame["rating"] = np.nan  # every mean of rating is NaN; other numbers stay usable
    frame["size"] = frame["size"].round(-1)
    frame.to_csv(tmp_path / "shop.csv", index=False)
    prepared = drills.prepared_drills(_spec(), tmp_path / "shop.csv", count=20)
    for p in prepared:
        for answer in p.task.answers:
            value = p.expected[answer.name]
            assert value == value and value not in (float("inf"), float("-inf")), p.task.id


def test_collect_adds_drills_to_the_train_tasks_only(tmp_path):
    cache = tmp_path / "cache"
    plain = select_tasks(CollectConfig(out=tmp_path / "a", tasks="tips/*", cache=cache))
    with_drills = select_tasks(CollectConfig(out=tmp_path / "b", tasks="tips/*", drills=3, cache=cache))
    extra = [p for p in with_drills if "/drill-" in p.task.id]
    assert len(with_drills) == len(plain) + len(extra) and 1 <= len(extra) <= 3
    assert {p.split for p in with_drills} == {"train"}
    only = select_tasks(CollectConfig(out=tmp_path / "c", tasks="tips/drill-*", drills=3, cache=cache))
    assert [p.task.id for p in only] == [p.task.id for p in extra]


def test_the_expert_prints_answers_rounded_as_asked():
    answers = [
        Answer(name="mean_price", decimals=2),
        Answer(name="shop", kind="text"),
        Answer(name="n", decimals=0),
    ]
    assert answer_prints(answers) == (
        'print("mean_price =", round(mean_price, 2))\nprint("shop =", shop)\nprint("n =", n)'
    )
    assert (
        answer_prints(answers[:1], {"mean_price": "mean_prce"})
        == 'print("mean_price =", round(mean_prce, 2))'
    )


def test_the_expert_solves_drills_in_a_real_kernel(tmp_path):
    spec = next(s for s in load_suite() if s.name == "tips")
    config = CollectConfig(out=tmp_path / "c", tasks="tips/drill-*", drills=3, cache=tmp_path / "cache")
    prepared = select_tasks(config)
    assert prepared
    for seed, p in enumerate(prepared[:2]):
        result = analyze(
            [p.csv_path],
            task_question(p),
            tmp_path / f"run{seed}",
            ExpertBackend(p.task, seed),
            RunConfig(max_turns=10),
            task_id=p.task.id,
        )
        score = score_task(p, result.trajectory)
        assert result.outcome.status == "report" and score.correct, (p.task.id, score.model_dump())
    assert spec.split == "train"


def test_training_selection_takes_drills_and_spreads_over_datasets(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "select_training.py"
    spec = importlib.util.spec_from_file_location("select_training", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = [
        {"task": f"{d}/drill-{i}", "seed": 0, "verdict": "kept", "turns": 3, "errors": 0, "tokens": 100}
        for d in ("aaa", "bbb")
        for i in range(5)
    ]
    collected = tmp_path / "collect"
    collected.mkdir()
    (collected / "stats.json").write_text(json.dumps({"runs_detail": runs}))
    (collected / "train.jsonl").write_text("".join(json.dumps({"id": r["task"]}) + "\n" for r in runs))
    assert module.main([str(collected), "--budget", "400", "--out", str(tmp_path / "out")]) == 0
    taken = json.loads((tmp_path / "out" / "selection.json").read_text())
    # Budget for 4 of 10: the two datasets take turns rather than the first filling it alone.
    assert taken["runs"] == ["aaa/drill-0 s0", "bbb/drill-0 s0", "aaa/drill-1 s0", "bbb/drill-1 s0"]
    assert taken["closed"] == 4 and taken["tokens"] == 400


def test_number_coded_groups_give_integer_answers(tmp_path):
    frame = _frame().drop(columns=["shop", "year"])
    frame["cyl"] = np.random.default_rng(1).choice([4, 6, 8], len(frame))
    frame.to_csv(tmp_path / "shop.csv", index=False)
    prepared = drills.prepared_drills(_spec(), tmp_path / "shop.csv", count=30)
    best = [p for p in prepared if re.search(r"/drill-(highest|lowest)-mean", p.task.id)]
    assert best, [p.task.id for p in prepared]
    for p in best:
        group, mean = p.task.answers
        assert group.kind == "number" and group.decimals == 0
        num, pick = re.search(
            r"\['(\w+)'\]\.mean\(\)\n\w+ = means\.idx(max|min)", p.task.reference_code
        ).groups()
        means = frame.groupby("cyl")[num].mean()
        assert p.expected[group.name] == (means.idxmax() if pick == "max" else means.idxmin())
        assert p.expected[mean.name] == pytest.approx(means.max() if pick == "max" else means.min())


def test_drills_say_columns_in_words_and_name_answers_by_role():
    frame = _frame().rename(columns={"price": "UnitPrice", "shop": "Shop.Region"})
    questions, names = [], set()
    for seed in range(6):
        for task in drills.drill_tasks(_spec(), frame, count=11, seed=seed):
            questions.append(task.question)
            names |= {a.name for a in task.answers}
            assert "UnitPrice" in task.reference_code or "unit price" not in task.question
    text = "\n".join(questions)
    assert "unit price" in text and "UnitPrice" in text  # both ways of saying the column
    assert "shop region" in text and "Shop.Region" in text
    assert {"group", "top", "name"} & names  # roles, not only column names
    assert drills.words("DriveTrain") == "drive train" and drills.words("hwy") == "hwy"
