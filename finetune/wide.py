"""Wide drills: drills over tables outside the suite, so training sees many tables, not twenty.

The tuned models' closed answers on held-out tables fail on the table, not the question: the wrong
column, no grouping, the wrong filter. Every trajectory so far came from the same 20 train datasets,
and 17 times more of them (tuned v8) did not move held-out correctness. This module widens the
tables instead: it picks tables from pydataset's bundled Rdatasets archive that are not in the suite,
writes each one to the prepare cache, and drills it (``finetune.drills``).

No held-out data may leak in, so a table is refused when
- its name is a suite dataset's (any R package: ``datasets/airquality`` and ``Ecdat/Airq`` alike are
  checked by name and by content), or one of ``HELD_OUT_WORDS``;
- any of its numeric columns with 10 or more distinct values holds exactly the values of a held-out
  dataset's column (the same data under another name);
- its column names overlap a held-out dataset's by half or more.

A table that shares a column's values with one already picked is skipped too (Rdatasets ships some
tables in several R packages).

The pick is seeded and sorted, so the same count and seed give the same tables on every machine.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eval_datasets.prepare import PreparedTask
from eval_datasets.schema import DatasetSpec, Source

# Words in a held-out dataset's name or topic; a table named with one is never picked.
HELD_OUT_WORDS = (
    "airq",
    "affair",
    "baseball",
    "batting",
    "boston",
    "breast",
    "biopsy",
    "caschool",
    "cigar",
    "diabetes",
    "economics",
    "fair",
    "flights",
    "mpg",
    "seattle",
    "statecrime",
    "weather",
)
MIN_ROWS, MAX_ROWS = 30, 20_000
MIN_COLUMNS, MAX_COLUMNS = 3, 25
MIN_DRILLS = 4  # a table that invites fewer questions teaches little


@dataclass(frozen=True)
class WideTable:
    """One picked table: what ``finetune.drills`` needs (name, csv, split) and where it came from."""

    name: str
    csv: str
    item: str
    split: str = "train"


def candidates() -> list[str]:
    """Every table in pydataset's Rdatasets archive, as ``<R package>/<dataset>``."""
    from eval_datasets.sources import _rdatasets_archive

    prefix = "resources/rdata/csv/"
    items = []
    for member in _rdatasets_archive().getmembers():
        name = member.name
        if member.isfile() and name.startswith(prefix) and name.endswith(".csv"):
            item = name[len(prefix) : -len(".csv")]
            if not item.rsplit("/", 1)[-1].startswith("._"):  # macOS resource forks in the tarball
                items.append(item)
    return sorted(items)


def _load(item: str) -> pd.DataFrame:
    from eval_datasets.sources import load_frame

    return load_frame(Source(package="pydataset", item=item, loader=f'pydataset.data("{item}")'))


def _signature(series: pd.Series) -> str | None:
    """A hash of a numeric column's values (sorted, rounded), or None for a column too plain to tell."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return None
    values = series.dropna().astype(float).round(3)
    if values.nunique() < 10:
        return None
    return hashlib.sha256(repr(sorted(values.tolist())).encode()).hexdigest()


def _names(frame: pd.DataFrame) -> set[str]:
    return {re.sub(r"[^a-z0-9]", "", str(c).lower()) for c in frame.columns}


class HeldOut:
    """What the held-out datasets look like, to refuse their copies."""

    def __init__(self, specs: list[DatasetSpec]):
        from eval_datasets.sources import load_frame

        self.words = set(HELD_OUT_WORDS)
        self.signatures: set[str] = set()
        self.columns: list[set[str]] = []
        for spec in specs:
            self.words.add(spec.name.replace("-", ""))
            self.words.add(spec.source.item.rsplit("/", 1)[-1].lower().replace("_", ""))
            if spec.split != "heldout":
                continue
            frame = load_frame(spec.source)
            self.signatures |= {s for c in frame.columns if (s := _signature(frame[c]))}
            self.columns.append(_names(frame))

    def named(self, item: str) -> bool:
        plain = re.sub(r"[^a-z0-9]", "", item.rsplit("/", 1)[-1].lower())
        return any(word in plain for word in self.words)

    def copied(self, frame: pd.DataFrame) -> bool:
        if any(_signature(frame[c]) in self.signatures for c in frame.columns):
            return True
        names = _names(frame)
        return any(len(names & other) >= 0.5 * min(len(names), len(other)) for other in self.columns)


def table_name(item: str) -> tuple[str, str]:
    """``("wide-mass-cats", "cats.csv")`` for ``MASS/cats``."""
    package, _, dataset = item.partition("/")
    slug = re.sub(r"[^a-z0-9]+", "-", f"{package}-{dataset}".lower()).strip("-")
    return f"wide-{slug}", re.sub(r"[^a-z0-9]+", "_", dataset.lower()).strip("_") + ".csv"


def usable(frame: pd.DataFrame) -> bool:
    """A table of a size and shape that drills can ask real questions of."""
    from finetune.drills import Columns

    if not (MIN_ROWS <= len(frame) <= MAX_ROWS and MIN_COLUMNS <= frame.shape[1] <= MAX_COLUMNS):
        return False
    if not all(str(c).isprintable() and len(str(c)) <= 30 for c in frame.columns):
        return False
    cols = Columns(frame)
    return len(cols.numeric) >= 2 and len(cols.groups) >= 1


def pick_tables(
    count: int, cache: Path, specs: list[DatasetSpec], seed: int = 0
) -> list[tuple[WideTable, Path]]:
    """Up to ``count`` usable tables outside the suite, each written once to ``<cache>/wide/``."""
    from finetune.drills import drill_tasks

    held_out = HeldOut(specs)
    seen: set[str] = set()  # column signatures of the tables picked so far: one copy of each table
    order = candidates()
    random.Random(f"wide:{seed}").shuffle(order)
    picked: list[tuple[WideTable, Path]] = []
    for item in order:
        if len(picked) >= count:
            break
        if item.split("/", 1)[0] == "Lahman" or held_out.named(item):
            continue
        name, csv = table_name(item)
        try:
            frame = _load(item)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
            continue  # a few archive files are not plain CSV tables
        if not usable(frame) or held_out.copied(frame):
            continue
        signatures = {s for c in frame.columns if (s := _signature(frame[c]))}
        if signatures & seen:
            continue
        table = WideTable(name=name, csv=csv, item=item)
        if len(drill_tasks(table, frame, MIN_DRILLS, seed)) < MIN_DRILLS:
            continue
        path = cache / "wide" / name / csv
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".csv.part")
            frame.to_csv(partial, index=False)
            partial.replace(path)
        seen |= signatures
        picked.append((table, path))
    return picked


def prepared_wide(
    count: int, drills: int, cache: Path, specs: list[DatasetSpec], seed: int = 0
) -> list[PreparedTask]:
    """Drills with their expected answers over ``count`` tables outside the suite."""
    from finetune.drills import prepared_drills

    prepared: list[PreparedTask] = []
    for table, path in pick_tables(count, cache, specs, seed):
        prepared += prepared_drills(table, path, drills, seed)
    return prepared
