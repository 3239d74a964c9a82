"""`analyst collect`: verified runs kept, the others dropped with the right reason, held-out refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import prompts
from agent.backends.scripted import ScriptedBackend
from agent.cli import main
from eval_datasets.prepare import PreparedTask
from eval_datasets.schema import load_suite
from finetune.collect import CollectConfig, CollectError, Sample, assert_train, collect, drop_duplicates

MEAN_CODE = (
    "```python\nimport pandas as pd\ndf = pd.read_csv('penguins.csv')\nprint(df['body_mass_g'].mean())\n```"
)


def _report_from_output(messages):
    """A report quoting the number the kernel printed (so a correct run is correct for real)."""
    printed = messages[-1].content.split("```")[1].strip()
    return f"## Final Report\n- The mean body mass is @mean_mass[{float(printed):.1f}] grams."


def _scripted(prepared, seed: int) -> ScriptedBackend:
    replies = {
        0: [MEAN_CODE, _report_from_output],  # right answer
        # a wrong answer, kept after the loop's answer check sent the report back once
        1: [MEAN_CODE] + ["## Final Report\n- The mean body mass is @mean_mass[1.0]."] * 2,
        2: [MEAN_CODE] * 6,  # never reports before the turn limit
        3: [MEAN_CODE, _report_from_output],  # the same conversation as seed 0
        # right in the end, but only after failing three times and being asked for the report
        4: [MEAN_CODE]
        + ["```python\nprint(df['mass'].mean())\n```"] * 3
        + ["## Final Report\n- The mean body mass is @mean_mass[4201.8] grams."],
    }[seed]
    return ScriptedBackend(replies)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("datasets")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scripted_runs_are_kept_or_dropped_for_the_right_reason(tmp_path, cache):
    config = CollectConfig(
        out=tmp_path / "out", tasks="penguins/mean-body-mass", samples=5, max_turns=6, workers=2, cache=cache
    )
    stats = collect(config, teacher=_scripted)
    written = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert written["kept"] == stats["kept"] == 1
    assert written["dropped"] == {"asked_for_report": 1, "duplicate": 1, "no_report": 1, "wrong_answer": 1}
    verdicts = {run["seed"]: run["verdict"] for run in written["runs_detail"]}
    assert verdicts == {0: "kept", 1: "wrong_answer", 2: "no_report", 3: "duplicate", 4: "asked_for_report"}
    rows = _lines(tmp_path / "out" / "train.jsonl")
    assert len(rows) == 1
    assert prompts.parse_answers(rows[0]["messages"][-1]["content"]) == {"mean_mass": "4201.8"}
    assert len(list((tmp_path / "out" / "trajectories").glob("*.jsonl"))) == 5
    assert written["closed_tasks_solved"] == 1 and written["tokens"]["total"] > 0


PLOT_CODE = (
    "```python\nimport pandas as pd\nimport matplotlib.pyplot as plt\ndf = pd.read_csv('penguins.csv')\n"
    "means = df.groupby('species')['body_mass_g'].mean()\nprint(means.round(1))\nmeans.plot.bar()\nplt.show()\n```"
)


def _open_runs(prepared, seed: int) -> ScriptedBackend:
    reports = {
        0: "## Final Report\n- Gentoo is the heaviest; Adelie and Chinstrap are lighter.",
        1: "## Final Report\n- The species differ in body mass; Gentoo is the heaviest.",  # names too few
    }
    return ScriptedBackend([PLOT_CODE, reports[seed]])


def test_an_open_run_is_kept_only_if_its_report_names_the_facts_the_eval_checks(tmp_path, cache):
    # A model teacher's open report that skips the task's facts passes no eval; tuned v10 was trained
    # on six such runs and its held-out open reports then missed their facts too.
    config = CollectConfig(out=tmp_path / "out", tasks="penguins/what-differs", samples=2, cache=cache)
    collect(config, teacher=_open_runs)
    written = json.loads((tmp_path / "out" / "stats.json").read_text())
    verdicts = {run["seed"]: (run["verdict"], run["detail"]) for run in written["runs_detail"]}
    assert verdicts[0] == ("kept", "")
    assert verdicts[1][0] == "facts_missing" and "Chinstrap" in verdicts[1][1]
    assert len(_lines(tmp_path / "out" / "train.jsonl")) == 1


def _well_formed(messages: list[dict]) -> None:
    roles = [m["role"] for m in messages]
    assert roles[0] == "system" and roles[1] == "user"
    assert all(a != b for a, b in zip(roles[1:], roles[2:], strict=False)), roles
    assert roles[-1] == "assistant" and prompts.extract_report(messages[-1]["content"])
    assert all(m["content"].strip() for m in messages)


def test_expert_collects_verified_data_on_real_train_tasks(tmp_path, cache):
    config = CollectConfig(out=tmp_path / "out", tasks="penguins/*", samples=1, workers=2, cache=cache)
    stats = collect(config)
    assert stats["tasks"] == {"total": 5, "closed": 4, "open": 1}
    assert stats["kept"] == 5 and stats["dropped"] == {}
    assert stats["closed_tasks_unsolved"] == [] and stats["open_tasks_kept"] == 1
    assert 3 <= stats["turns"]["min"] and stats["turns"]["max"] <= 6
    rows = _lines(tmp_path / "out" / "train.jsonl")
    assert len(rows) == 5
    for row in rows:
        assert set(row) == {"messages"}
        _well_formed(row["messages"])
        assert str(tmp_path) not in json.dumps(row)  # run folders are cut out of figure notes
    # Training prompts carry the same answer-format hint that `analyst eval` gives the model.
    hinted = [row for row in rows if "@" in row["messages"][-1]["content"]]
    assert hinted and all("write each answer as shown" in row["messages"][1]["content"] for row in hinted)


def test_duplicates_ignore_whitespace_and_addresses():
    def sample(seed: int, text: str) -> Sample:
        messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": text}]
        return Sample(task_id="t/x", kind="closed", seed=seed, verdict="kept", messages=messages)

    samples = [sample(0, "a  <Figure at 0x7f01>\n"), sample(1, "a <Figure at 0x7f99>"), sample(2, "b")]
    drop_duplicates(samples)
    assert [s.verdict for s in samples] == ["kept", "duplicate", "kept"]


def test_heldout_tasks_are_refused(tmp_path, cache):
    with pytest.raises(CollectError, match="held-out"):
        collect(CollectConfig(out=tmp_path / "a", split="heldout", cache=cache))
    heldout = next(s for s in load_suite() if s.split == "heldout")
    with pytest.raises(CollectError, match="no train task"):
        collect(CollectConfig(out=tmp_path / "b", tasks=heldout.tasks[0].id, cache=cache))
    smuggled = PreparedTask(task=heldout.tasks[0], split="heldout", csv_path=tmp_path / heldout.csv)
    with pytest.raises(CollectError, match="never collected"):
        assert_train(smuggled)
    result = CliRunner().invoke(main, ["collect", "--split", "heldout", "--out", str(tmp_path / "c")])
    assert result.exit_code == 1 and "held-out" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "c").exists()


def test_a_local_model_teacher_is_loaded_once_per_worker(monkeypatch, tmp_path):
    # One model behind a lock kept collect's second worker waiting on the first's decode (measured:
    # one busy core with --workers 2); each worker thread now gets its own, as eval's workers do.
    import threading

    from finetune import collect as collect_module

    made = []

    def fake_backend(kind, model, **options):
        backend = ScriptedBackend([])
        made.append((kind, model, options, backend))
        return backend

    monkeypatch.setattr("agent.backends.factory.create_backend", fake_backend)
    config = CollectConfig(out=tmp_path, backend="llamacpp", model="default", workers=2)
    teacher = collect_module.make_teacher(config)
    assert len(made) == 1  # built up front, so a bad --model fails before any run
    barrier, got = threading.Barrier(2), {}

    def worker(name):
        barrier.wait()
        got[name] = (teacher(None, 0), teacher(None, 1))

    threads = [threading.Thread(target=worker, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got["a"][0] is got["a"][1] and got["b"][0] is got["b"][1]  # one backend per worker
    assert got["a"][0] is not got["b"][0] and len(made) == 2
    # a server's client is shared: the server decides how to batch
    made.clear()
    served = CollectConfig(
        out=tmp_path, backend="openai", model="m", base_url="http://127.0.0.1:1/v1", workers=2
    )
    teacher = collect_module.make_teacher(served)
    assert teacher(None, 0) is teacher(None, 1) and len(made) == 1
    assert made[0][2] == {"base_url": "http://127.0.0.1:1/v1"}
