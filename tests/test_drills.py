"""Drills: generated closed questions over a train dataset, verified like the task files' own."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pandas as pd
import pytest

from agent import prompts
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


@pytest.fixture(scope="module")
def select_training(script):
    return script("select_training")


def test_training_selection_takes_drills_and_spreads_over_datasets(tmp_path, select_training):
    runs = [
        {"task": f"{d}/drill-{i}", "seed": 0, "verdict": "kept", "turns": 3, "errors": 0, "tokens": 100}
        for d in ("aaa", "bbb")
        for i in range(5)
    ]
    collected = tmp_path / "collect"
    collected.mkdir()
    (collected / "stats.json").write_text(json.dumps({"runs_detail": runs}))
    (collected / "train.jsonl").write_text("".join(json.dumps({"id": r["task"]}) + "\n" for r in runs))
    assert select_training.main([str(collected), "--budget", "400", "--out", str(tmp_path / "out")]) == 0
    taken = json.loads((tmp_path / "out" / "selection.json").read_text())
    # Budget for 4 of 10: the two datasets take turns rather than the first filling it alone.
    assert sorted(r.split("/")[0] for r in taken["runs"]) == ["aaa", "aaa", "bbb", "bbb"]
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


def _solve(drill) -> dict:
    """Run a drill's computation on the frame, as the reference runner does."""
    slug, question, answers, code = drill
    space = {"pd": pd, "df": _paired_frame()}
    exec(code, space)
    return {a.name: space[a.name] for a in answers}


def _paired_frame() -> pd.DataFrame:
    frame = _frame()
    frame["member"] = np.where(frame["price"] > frame["price"].median(), "yes", "no")
    frame["buyer"] = [f"b{i}" for i in np.random.default_rng(3).integers(0, 40, len(frame))]
    return frame


def _drills(kind, seeds: int = 40) -> list:
    cols = drills.Columns(_paired_frame())
    made = [kind(cols, random.Random(seed)) for seed in range(seeds)]
    return [d for d in made if d is not None]


def test_line_fits_match_least_squares():
    frame = _paired_frame()
    made = _drills(drills.line_fit)
    assert {tuple(a.name for a in d[2]) for d in made} >= {("slope", "intercept"), ("r2",)}
    for drill in made:
        y, x = re.match(r"fit-(\w+)-on-(\w+)-", drill[0]).groups()
        known = frame[[x, y]].dropna()
        design = np.column_stack([known[x], np.ones(len(known))])
        (slope, intercept), *_ = np.linalg.lstsq(design, known[y], rcond=None)
        resid = known[y] - design @ np.array([slope, intercept])
        r2 = 1 - (resid**2).sum() / ((known[y] - known[y].mean()) ** 2).sum()
        want = {"slope": slope, "intercept": intercept, "r2": r2}
        got = _solve(drill)
        assert got == {k: pytest.approx(want[k]) for k in got}, drill[1]
        assert "ordinary least squares line" in drill[1]


def test_rule_accuracy_counts_the_rows_the_rule_gets_right():
    frame = _paired_frame()
    made = _drills(drills.rule_accuracy)
    assert made
    for drill in made:
        level, num, op, cut = re.search(r"= (\w+) when (\w+) (>|<=) ([\d.]+)", drill[1]).groups()
        rows = frame.dropna(subset=["member", num])
        said = rows[num] > float(cut) if op == ">" else rows[num] <= float(cut)
        right = sum(bool(s) == (m == level) for s, m in zip(said, rows["member"], strict=True))
        (value,) = _solve(drill).values()
        assert value == pytest.approx(100 * right / len(rows)), drill[1]


def test_percentages_under_a_condition_skip_unknown_values():
    frame = _paired_frame()
    made = _drills(drills.share_where)
    assert any("rating" in d[0] for d in made)  # the column with gaps is among them
    for drill in made:
        col = re.match(r"pct-(\w+)-(le|gt)", drill[0]).group(1)
        cut = float(re.search(r"(?:<=|>|at most|above) ([\d.]+)\?", drill[1]).group(1))
        known = frame[col].dropna()
        want = 100 * ((known <= cut) if drill[0].endswith("-le") else (known > cut)).sum() / len(known)
        (value,) = _solve(drill).values()
        assert value == pytest.approx(want), drill[1]


def test_median_multiples_count_the_rows_above():
    frame = _paired_frame()
    rng = np.random.default_rng(2)
    frame["spend"] = np.r_[rng.uniform(0.5, 1.5, 100), rng.uniform(4, 6, 20)]  # 20 rows far above
    frame["level"] = rng.uniform(10, 12, len(frame))  # no row above 1.5 times its median
    cols = drills.Columns(frame)
    made = [drills.median_multiple(cols, random.Random(s)) for s in range(40)]
    spend = [d for d in made if d is not None and "spend" in d[0]]
    assert spend
    for _slug, question, answers, code in spend:
        space = {"pd": pd, "df": frame}
        exec(code, space)
        assert space[answers[0].name] == frame["spend"].median() and space["n_high"] == 20, question
    # a column where no row passes the multiple gives no drill: a zero count teaches nothing
    assert all(d is None or "level" not in d[0] for d in made)


def test_mixed_training_sets_carry_no_loss_on_failing_replies(tmp_path, script):
    mix_training = script("mix_training")
    traceback = "Output:\n```\nTraceback (most recent call last):\n\nKeyError: 'Price'\n```"
    check = prompts.CHECK_LEFT_OUT.format(answers="@n[...]")
    old = [  # collected before failing replies were marked
        {"role": "user", "content": "Task"},
        {"role": "assistant", "content": "print(df['Price'])"},
        {"role": "user", "content": traceback},
        {"role": "assistant", "content": "print(df['price'])"},
        {"role": "user", "content": "Output:\n```\n3\n```"},
        {"role": "assistant", "content": "## Report, no answer"},
        {"role": "user", "content": check},
        {"role": "assistant", "content": "## Report @n[3]"},
    ]
    new = [old[0], {**old[1], "train": False}, *old[2:]]
    for name, conversation in (("old", old), ("new", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.jsonl").write_text(json.dumps({"messages": conversation}) + "\n")
    before = (tmp_path / "old" / "train.jsonl").read_text()

    assert (
        mix_training.main([str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(tmp_path / "mix")]) == 0
    )
    mixed = [
        json.loads(line)["messages"] for line in (tmp_path / "mix" / "train.jsonl").read_text().splitlines()
    ]
    # the cell that failed and the report sent back: context only, in both sets; the rest is learnt
    for conversation in mixed:
        replies = [m.get("train", True) for m in conversation if m["role"] == "assistant"]
        assert replies == [False, True, False, True]
    taken = json.loads((tmp_path / "mix" / "selection.json").read_text())
    assert [s["newly_untrained"] for s in taken["sources"]] == [2, 1] and taken["untrained_replies"] == 4
    assert (tmp_path / "old" / "train.jsonl").read_text() == before  # the inputs are left as they were
    with pytest.raises(SystemExit, match="one of the inputs"):
        mix_training.main([str(tmp_path / "old"), "--out", str(tmp_path / "old")])


def test_training_selection_spreads_over_kinds_of_mistake(tmp_path, select_training):

    def conversation(error: str) -> dict:
        failed = (
            error
            if error.startswith("Your report")
            else f"Output:\n```\nTraceback (most recent call last):\n\n{error}\n```"
        )
        return {"messages": [{"role": "user", "content": "Task"}, {"role": "user", "content": failed}]}

    errors = {
        0: "KeyError: 'Price'",
        1: "NameError: name 'mean_prce' is not defined",
        2: "AttributeError: Can only use .dt accessor with datetimelike values",
        3: prompts.CHECK_LEFT_OUT.format(answers="@mean_price[...]"),  # a report the answer check sent back
    }
    runs, lines = [], []
    for task in ("aaa/t1", "aaa/t2", "aaa/t3", "aaa/t4"):
        for seed, tokens in (
            (0, 100),
            (1, 110),
            (2, 120),
            (3, 130),
        ):  # the KeyError run is always the shortest
            check = seed == 3
            runs.append(
                {
                    "task": task,
                    "seed": seed,
                    "verdict": "kept",
                    "turns": 4,
                    "errors": int(not check),
                    "tokens": tokens,
                }
                | ({"checks": 1} if check else {})
            )
            lines.append(json.dumps(conversation(errors[seed])))
    collected = tmp_path / "collect"
    collected.mkdir()
    (collected / "stats.json").write_text(json.dumps({"runs_detail": runs}))
    (collected / "train.jsonl").write_text("".join(line + "\n" for line in lines))
    assert select_training.main([str(collected), "--fix-every", "1", "--out", str(tmp_path / "out")]) == 0
    taken = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert sorted(taken["runs"]) == ["aaa/t1 s0", "aaa/t2 s1", "aaa/t3 s2", "aaa/t4 s3"]
    assert taken["mistakes"] == {"AttributeError: .dt": 1, "KeyError": 1, "NameError": 1, "check": 1}
    assert taken["with_fixed_mistake"] == 4


def test_training_selection_takes_kinds_of_question_in_turn_and_rare_fixes_first(tmp_path, select_training):
    assert select_training.question_kind("tips/drill-corr-tip-total-bill") == "corr"
    assert select_training.question_kind("tips/tip-by-day") == "task"

    def run(task: str, error: str = "") -> tuple[dict, str]:
        content = (
            f"Output:\n```\nTraceback (most recent call last):\n\n{error}\n```" if error else "Output: 1"
        )
        messages = [{"role": "user", "content": "Task"}, {"role": "user", "content": content}]
        record = {
            "task": task,
            "seed": 0,
            "verdict": "kept",
            "turns": 3,
            "errors": int(bool(error)),
            "tokens": 100,
        }
        return record, json.dumps({"messages": messages})

    runs = [run(f"aaa/drill-corr-{c}") for c in "abcd"] + [run(f"aaa/drill-fit-{c}") for c in "ab"]
    runs += [run(f"aaa/drill-share-{c}", "KeyError: 'Price'") for c in "abcdefghijklmnopqrst"]
    runs += [
        run("aaa/drill-share-z", "TypeError: DataFrame.corr() got multiple values for argument 'method'")
    ]
    runs += [run("aaa/price-by-year")]
    collected = tmp_path / "collect"
    collected.mkdir()
    (collected / "stats.json").write_text(json.dumps({"runs_detail": [r for r, _ in runs]}))
    (collected / "train.jsonl").write_text("".join(line + "\n" for _, line in runs))
    assert select_training.main([str(collected), "--budget", "400", "--out", str(tmp_path / "out")]) == 0
    taken = json.loads((tmp_path / "out" / "selection.json").read_text())["runs"]
    # the one rare fix (1 of 21 fixed runs) first, then one question of each kind
    assert taken[0] == "aaa/drill-share-z s0"
    assert sorted(select_training.question_kind(r.split()[0]) for r in taken[1:]) == ["corr", "fit", "task"]


def test_peak_years_and_group_totals_match_a_plain_loop():
    frame = _paired_frame()
    made = _drills(drills.peak_year)
    assert {d[0].split("-")[2] for d in made} == {"total", "mean"}
    for drill in made:
        num = re.match(r"peak-year-(?:total|mean)-(\w+)", drill[0]).group(1)
        per_year: dict[int, list[float]] = {}
        for year, value in zip(frame["year"], frame[num], strict=True):
            if value == value:  # not NaN
                per_year.setdefault(int(year), []).append(value)
        if "-total-" in drill[0]:
            stat = {year: sum(values) for year, values in per_year.items()}
        else:
            stat = {year: sum(values) / len(values) for year, values in per_year.items()}
        best = max(stat, key=stat.get)
        year, value = _solve(drill).values()
        assert year == best and value == pytest.approx(stat[best]), drill[1]
    totals = [d for d in _drills(drills.best_group) if "-total-" in d[0]]
    assert totals
    for drill in totals:
        word, num, cat = re.match(r"(highest|lowest)-total-(\w+)-by-(\w+)", drill[0]).groups()
        sums = {g: frame.loc[frame[cat] == g, num].sum() for g in frame[cat].dropna().unique()}
        pick = (max if word == "highest" else min)(sums, key=sums.get)
        group, value = _solve(drill).values()
        assert group == pick and value == pytest.approx(sums[pick]), drill[1]


def test_distinct_values_per_group_are_counted():
    frame = _paired_frame()
    cols = drills.Columns(frame)
    assert cols.repeated == ["buyer"] and "name" not in cols.repeated  # unique names do not repeat
    made = [d for d in (drills.distinct_per_group(cols, random.Random(s)) for s in range(20)) if d]
    assert made
    for drill in made:
        cat = re.match(r"distinct-buyer-by-(\w+)", drill[0]).group(1)
        seen: dict[object, set] = {}
        for group, buyer in zip(frame[cat], frame["buyer"], strict=True):
            seen.setdefault(group, set()).add(buyer)
        best = max(seen, key=lambda g: len(seen[g]))
        group, n = _solve(drill).values()
        assert group == best and n == len(seen[best]), drill[1]


def test_drill_kinds_take_turns(monkeypatch):
    """Every kind once before any kind twice; a kind with nothing (left) to ask drops out."""

    def kind(name: str, limit: int):
        def make(cols, rng):
            n = rng.randrange(limit) if limit else None
            return (
                None
                if n is None
                else (
                    f"{name}-{n}",
                    f"{name} {n}? Report @n[value].",
                    [Answer(name="n", decimals=0)],
                    "n = 1",
                )
            )

        return make

    kinds = [kind("many", 100), kind("few", 1), kind("none", 0), kind("more", 100)]
    monkeypatch.setattr(drills, "KINDS", kinds)

    def made(count: int) -> list[str]:
        return [t.id.split("/drill-")[1].split("-")[0] for t in drills.drill_tasks(_spec(), _frame(), count)]

    assert sorted(made(3)) == ["few", "many", "more"]
    assert sorted(made(5)) == ["few", "many", "many", "more", "more"]  # `few` has one drill only
    assert len(made(50)) == 50


def test_training_selection_excludes_an_earlier_selections_tasks(tmp_path, select_training):
    runs = [
        {"task": f"aaa/drill-{i}", "seed": seed, "verdict": "kept", "turns": 3, "errors": 0, "tokens": 100}
        for i in range(4)
        for seed in (0, 1)
    ]
    collected = tmp_path / "collect"
    collected.mkdir()
    (collected / "stats.json").write_text(json.dumps({"runs_detail": runs}))
    (collected / "train.jsonl").write_text(
        "".join(json.dumps({"id": f"{r['task']} s{r['seed']}"}) + "\n" for r in runs)
    )
    first = tmp_path / "first"
    assert select_training.main([str(collected), "--budget", "200", "--out", str(first)]) == 0
    earlier = {r.split(" ")[0] for r in json.loads((first / "selection.json").read_text())["runs"]}
    assert len(earlier) == 2

    second = tmp_path / "second"
    argv = [str(collected), "--exclude", str(first / "selection.json"), "--out", str(second)]
    assert select_training.main(argv) == 0
    taken = json.loads((second / "selection.json").read_text())
    later = {r.split(" ")[0] for r in taken["runs"]}
    assert later == {f"aaa/drill-{i}" for i in range(4)} - earlier  # the other two tasks, and only they
    assert taken["excluded_tasks"] == 2
    # each line written is the run named, not a neighbour shifted by the filtering
    written = [json.loads(line)["id"] for line in (second / "train.jsonl").read_text().splitlines()]
    assert written == taken["runs"]

    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a selection.json"):
        select_training.main([str(collected), "--exclude", str(tmp_path / "bad.json"), "--out", str(second)])
