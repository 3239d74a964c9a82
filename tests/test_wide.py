"""Wide drills: tables outside the suite, drilled for training, never a held-out table in disguise."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from eval_datasets.schema import Source, load_suite
from eval_datasets.sources import load_frame
from finetune import wide
from finetune.collect import CollectConfig, CollectError, select_tasks


@functools.cache
def _held_out() -> wide.HeldOut:
    return wide.HeldOut(load_suite())


def _rdataset(item: str) -> pd.DataFrame:
    return load_frame(Source(package="pydataset", item=item, loader=""))


def test_held_out_tables_are_refused_by_name_and_by_content():
    held_out = _held_out()
    # By name, whichever R package ships it.
    assert held_out.named("datasets/airquality") and held_out.named("MASS/Boston")
    assert held_out.named("AER/Affairs") and held_out.named("Ecdat/Caschool")
    # By content: the Boston table under other column names and another row order is still Boston.
    boston = _rdataset("MASS/Boston").sample(frac=1, random_state=1)
    disguised = boston.set_axis([f"v{i}" for i in range(boston.shape[1])], axis=1)
    assert held_out.copied(disguised)
    # By column names: half of them shared with a held-out table.
    ozone = _rdataset("datasets/airquality")[["Ozone", "Solar.R", "Wind", "Temp"]].head(40) + 0.5
    assert held_out.copied(ozone)
    # A table the suite does not hold passes.
    cats = _rdataset("MASS/cats")
    assert not held_out.named("MASS/cats") and not held_out.copied(cats)


def test_table_names_are_slugs_and_plain_csv_names():
    assert wide.table_name("MASS/cats") == ("wide-mass-cats", "cats.csv")
    assert wide.table_name("rpart/cu.summary") == ("wide-rpart-cu-summary", "cu_summary.csv")


def test_picked_tables_are_seeded_usable_and_outside_the_suite(tmp_path):
    picked = wide.pick_tables(3, tmp_path, load_suite())
    assert len(picked) == 3
    assert [t.item for t, _ in wide.pick_tables(3, tmp_path, load_suite())] == [t.item for t, _ in picked]
    assert [t.item for t, _ in wide.pick_tables(3, tmp_path, load_suite(), seed=1)] != [
        t.item for t, _ in picked
    ]
    suite_items = {spec.source.item for spec in load_suite()}
    for table, path in picked:
        assert table.item not in suite_items and not _held_out().named(table.item)
        assert path == tmp_path / "wide" / table.name / table.csv
        frame = pd.read_csv(path)
        assert wide.usable(frame) and not _held_out().copied(frame)


def test_collect_drills_wide_tables_as_train_tasks(tmp_path):
    config = CollectConfig(out=tmp_path / "out", tasks="wide-*", drills=2, wide=2, cache=tmp_path / "cache")
    chosen = select_tasks(config)
    assert {p.split for p in chosen} == {"train"}
    assert len({p.task.dataset for p in chosen}) == 2
    assert all(p.task.dataset.startswith("wide-") for p in chosen)
    assert all(p.task.id.split("/")[1].startswith("drill-") and p.expected for p in chosen)
    assert 2 <= len(chosen) <= 4


def test_wide_without_drills_is_refused(tmp_path):
    with pytest.raises(CollectError, match="--drills"):
        select_tasks(CollectConfig(out=tmp_path / "out", tasks="wide-*", wide=2, cache=tmp_path / "cache"))
