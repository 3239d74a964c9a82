"""Drills: closed questions generated from a train dataset's own columns, to widen what the expert
teaches.

The task files hold about five hand-written questions per dataset, so the expert's trajectories show
the model only a hundred distinct computations; the tuned model then reuses their shape (group, take
the mean, draw a bar chart) where a held-out question needs a filter, a threshold or a correlation.
Drills add questions of the kinds analysts ask of any table, filled in with the dataset's columns and
values: the group with the highest mean, the mean within one group or above a threshold, a share, a
count, a correlation, the strongest correlate, a yearly mean, the row with the largest value, the most
common value, a percentage under a numeric condition, a median and the rows above a multiple of it,
a least-squares line (slope, intercept, R-squared), and the accuracy of a one-threshold rule. Each drill is an ordinary ``Task`` with reference code; its expected answers are computed
by the same reference runner as the task files', so collect verifies drill runs exactly like the rest.

Only train-split datasets and tables outside the suite (``finetune.wide``) are drilled; ``collect``
refuses anything else before this module is used.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pandas as pd

from agent.preview import is_text
from eval_datasets.prepare import PreparedTask, reference_job, run_references
from eval_datasets.schema import Answer, Task

ID_WORDS = re.compile(r"(^|_)(id|rownames|index|unnamed.*)$", re.IGNORECASE)
Drill = tuple[str, str, list[Answer], str]  # slug, question, answers, computation (after the read)


class Table(Protocol):
    """What drills need of a dataset: a suite ``DatasetSpec`` or a ``finetune.wide.WideTable``."""

    name: str
    csv: str
    split: str


class Columns:
    """The columns of one frame, sorted into the roles a drill needs."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        usable = [c for c in frame.columns if not ID_WORDS.search(str(c)) and str(c).isprintable()]
        self.numeric = [c for c in usable if _is_number(frame[c]) and frame[c].nunique() > 10]
        self.groups = [c for c in usable if _is_group(frame[c])]
        self.labels = [
            c for c in usable if is_text(frame[c]) and frame[c].nunique() > 0.8 * frame[c].notna().sum() > 5
        ]
        # text that repeats but has too many values to group by: a player per team, a city per state
        self.repeated = [
            c for c in usable if is_text(frame[c]) and 12 < frame[c].nunique() <= 0.8 * frame[c].notna().sum()
        ]
        self.years = [c for c in usable if _year_of(frame[c]) is not None]
        self.gappy = [c for c in usable if 0 < frame[c].isna().sum() < len(frame)]

    def levels(self, col: str, rng: random.Random, k: int) -> list:
        """``k`` group values with at least five rows each, in a random order."""
        counts = self.frame[col].value_counts()
        common = [v for v, n in counts.items() if n >= 5]
        return rng.sample(common, k) if len(common) >= k else []


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _is_group(series: pd.Series) -> bool:
    """Text with a few values, or a number that codes a few groups (cylinders, month, smoker 0/1)."""
    counts = series.value_counts()
    if is_text(series):
        return 2 <= len(counts) <= 12 and counts.min() >= 5
    coded = pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return coded and 2 <= len(counts) <= 10 and counts.min() >= 5


def _year_of(series: pd.Series) -> pd.Series | None:
    """The year of each row when the column is a year number or a date, else None."""
    name = str(series.name).lower()
    if _is_number(series) and name in {"year", "yr"} and series.between(1000, 3000).all():
        return series.astype(int)
    if is_text(series) and any(w in name for w in ("date", "time", "day", "month")):
        with warnings.catch_warnings():  # mixed formats fall back to dateutil: fine for a year
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(series, errors="coerce")
        if parsed.notna().mean() > 0.95:
            return parsed.dt.year
    return None


def ident(text: object) -> str:
    """A Python identifier made from a column name or a value: ``Sepal.Length`` -> ``sepal_length``."""
    word = re.sub(r"[^0-9a-zA-Z]+", "_", str(text)).strip("_").lower() or "value"
    return f"v_{word}" if word[0].isdigit() else word


def words(column: str) -> str:
    """A column as a question might say it: ``DriveTrain`` -> ``drive train``, ``Sepal.Length`` ->
    ``sepal length``; names that are already words stay as they are."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(column))
    return re.sub(r"[^0-9a-zA-Z]+", " ", spaced).strip().lower() or str(column)


class Namer:
    """How one drill names things: columns as written or in words, answers by role or by column.

    Answer names made from column names taught the tuned model that an answer's name is a column
    (``groupby('vehicle_class')`` for ``@vehicle_class`` when the column is ``class``), and questions
    that always quote the exact column spare it from reading the preview. Half the drills say the
    column in plain words; most name their answers by role (``@group``, ``@top``)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.plain = rng.random() < 0.5

    def col(self, column: str) -> str:
        return words(column) if self.plain else str(column)

    def answer(self, roles: list[str], column: str) -> str:
        return self.rng.choice([*roles, ident(column)] if self.rng.random() < 0.3 else roles)


def _group_answer(name: str, series: pd.Series) -> Answer:
    """A group's answer: a name, or an integer for number-coded groups."""
    return _text(name) if is_text(series) else _number(name, 0)


def _value(value: object) -> str:
    """A group value as a Python literal for the code (numpy scalars become plain numbers)."""
    return repr(value.item() if hasattr(value, "item") else value)


def _number(name: str, decimals: int, unit: str = "") -> Answer:
    return Answer(name=name, decimals=decimals, unit=unit)


def _text(name: str) -> Answer:
    return Answer(name=name, kind="text")


def _report(answers: list[Answer]) -> str:
    """The question's tail naming each answer, in the style of the task files."""
    parts = [f"@{a.name}[{'name' if a.kind == 'text' else 'value'}]" for a in answers]
    named = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
    decimals = {a.decimals for a in answers if a.kind == "number"}
    if len(decimals) == 1 and (d := decimals.pop()) is not None:
        rounding = "as an integer" if d == 0 else f"rounded to {d} decimal{'s' if d > 1 else ''}"
        return f"Report {named}, {rounding}."
    return f"Report {named}."


# the drill kinds ---------------------------------------------------------------------------------


def best_group(cols: Columns, rng: random.Random) -> Drill | None:
    if not (cols.groups and cols.numeric):
        return None
    cat, num = rng.choice(cols.groups), rng.choice(cols.numeric)
    high = rng.random() < 0.6
    word, pick = ("highest", "max") if high else ("lowest", "min")
    stat, said = rng.choice([("mean", "mean"), ("mean", "mean"), ("sum", "total")])
    say = Namer(rng)
    group = say.answer(["group", f"{word}_group", "best" if high else "worst"], cat)
    answers = [_group_answer(group, cols.frame[cat]), _number(rng.choice([said, f"{said}_{ident(num)}"]), 2)]
    if answers[0].name == answers[1].name:
        return None
    question = f"Which {say.col(cat)} has the {word} {said} {say.col(num)}, and what is that {said}? {_report(answers)}"
    code = (
        f"{said}s = df.groupby({cat!r})[{num!r}].{stat}()\n"
        f"{answers[0].name} = {said}s.idx{pick}()\n"
        f"{answers[1].name} = {said}s.{pick}()"
    )
    return f"{word}-{said}-{ident(num)}-by-{ident(cat)}", question, answers, code


def group_means(cols: Columns, rng: random.Random) -> Drill | None:
    if not (cols.groups and cols.numeric):
        return None
    cat, num = rng.choice(cols.groups), rng.choice(cols.numeric)
    levels = cols.levels(cat, rng, 2)
    if not levels:
        return None
    stat = rng.choice(["mean", "mean", "median"])
    say = Namer(rng)
    answers = [_number(f"{stat}_{ident(v)}", 2) for v in levels]
    if answers[0].name == answers[1].name:
        return None
    where = [f"{cat} = {v}" if rng.random() < 0.5 else f"{say.col(cat)} {v}" for v in levels]
    question = (
        f"What is the {stat} {say.col(num)} for rows with {where[0]} and for rows with {where[1]}? "
        f"{_report(answers)}"
    )
    code = "\n".join(
        f"{a.name} = df.loc[df[{cat!r}] == {_value(v)}, {num!r}].{stat}()"
        for a, v in zip(answers, levels, strict=True)
    )
    return f"{stat}-{ident(num)}-two-{ident(cat)}", question, answers, code


def threshold_means(cols: Columns, rng: random.Random) -> Drill | None:
    if len(cols.numeric) < 2:
        return None
    by, num = rng.sample(cols.numeric, 2)
    cut = float(cols.frame[by].median())
    cut = round(cut) if abs(cut) >= 10 else round(cut, 1)
    answers = [_number("above", 2), _number("below", 2)]
    say = Namer(rng)
    question = (
        f"What is the mean {say.col(num)} for rows with {by} >= {cut} and for rows with {by} < {cut}? "
        f"Report @above[value] (for {by} >= {cut}) and @below[value], rounded to 2 decimals."
    )
    code = (
        f"above = df.loc[df[{by!r}] >= {cut}, {num!r}].mean()\n"
        f"below = df.loc[df[{by!r}] < {cut}, {num!r}].mean()"
    )
    return f"{ident(num)}-above-below-{ident(by)}", question, answers, code


def share(cols: Columns, rng: random.Random) -> Drill | None:
    if not cols.groups:
        return None
    cat = rng.choice(cols.groups)
    level = cols.levels(cat, rng, 1)
    if not level:
        return None
    answers = [_number(rng.choice(["pct", "share", "percent"]), 1, "percent")]
    question = (
        f"What percentage of the rows have {Namer(rng).col(cat)} equal to {level[0]}? {_report(answers)}"
    )
    code = f"{answers[0].name} = (df[{cat!r}] == {_value(level[0])}).mean() * 100"
    return f"share-{ident(cat)}-{ident(level[0])}", question, answers, code


def _cut(value: float) -> float:
    """A threshold as a person would write it: whole above 10, else two decimals."""
    return round(value) if abs(value) >= 10 else round(value, 2)


def count_above(cols: Columns, rng: random.Random) -> Drill | None:
    if not cols.numeric:
        return None
    num = rng.choice(cols.numeric)
    cut = _cut(float(cols.frame[num].quantile(rng.choice([0.25, 0.75, 0.9]))))
    answers = [_number(rng.choice(["count", "rows", "n"]), 0)]
    question = f"How many rows have {Namer(rng).col(num)} greater than {cut}? {_report(answers)}"
    code = f"{answers[0].name} = int((df[{num!r}] > {cut}).sum())"
    return f"count-{ident(num)}-above", question, answers, code


def correlation(cols: Columns, rng: random.Random) -> Drill | None:
    if len(cols.numeric) < 2:
        return None
    a, b = rng.sample(cols.numeric, 2)
    answers = [_number("corr", 3)]
    slug = "corr-" + "-".join(sorted([ident(a), ident(b)]))  # a~b and b~a are one drill
    say = Namer(rng)
    question = f"What is the Pearson correlation between {say.col(a)} and {say.col(b)}? {_report(answers)}"
    code = f"corr = df[{a!r}].corr(df[{b!r}])"
    return slug, question, answers, code


def strongest(cols: Columns, rng: random.Random) -> Drill | None:
    if len(cols.numeric) < 3:
        return None
    target = rng.choice(cols.numeric)
    answers = [_text(rng.choice(["column", "variable", "strongest"])), _number("corr", 3)]
    question = (
        f"Which other numeric column has the strongest absolute Pearson correlation with "
        f"{Namer(rng).col(target)}, and "
        f"what is that correlation (with its sign)? {_report(answers)}"
    )
    code = (
        f"r = df.corr(numeric_only=True)[{target!r}].drop({target!r}).dropna()\n"
        f"{answers[0].name} = r.abs().idxmax()\n"
        f"corr = r[{answers[0].name}]"
    )
    return f"strongest-with-{ident(target)}", question, answers, code


def _year_and_number(cols: Columns, rng: random.Random) -> tuple[str, str, str] | None:
    """A year (or date) column, another numeric column, and the code for each row's year."""
    if not (cols.years and cols.numeric):
        return None
    col = rng.choice(cols.years)
    num = rng.choice([c for c in cols.numeric if c != col] or [None])
    if num is None:
        return None
    year = f"df[{col!r}]" if _is_number(cols.frame[col]) else f"pd.to_datetime(df[{col!r}]).dt.year"
    return col, num, year


def _tied_at_top(values: pd.Series) -> bool:
    """Whether the two largest values are equal: a tie at the top has no single answer."""
    return values.nlargest(2).nunique() < 2


def yearly(cols: Columns, rng: random.Random) -> Drill | None:
    if (picked := _year_and_number(cols, rng)) is None:
        return None
    col, num, year = picked
    years = sorted(_year_of(cols.frame[col]).value_counts().loc[lambda s: s >= 3].index)
    if len(years) < 2:
        return None
    first, last = sorted(rng.sample(years, 2))
    answers = [_number(f"mean_{first}", 2), _number(f"mean_{last}", 2)]
    question = f"What was the mean {Namer(rng).col(num)} in {first} and in {last}? {_report(answers)}"
    code = (
        f"year = {year}\n"
        f"{answers[0].name} = df.loc[year == {first}, {num!r}].mean()\n"
        f"{answers[1].name} = df.loc[year == {last}, {num!r}].mean()"
    )
    return f"{ident(num)}-in-{first}-and-{last}", question, answers, code


def peak_year(cols: Columns, rng: random.Random) -> Drill | None:
    """The year with the highest total (or mean) of a column, and that value."""
    if (picked := _year_and_number(cols, rng)) is None:
        return None
    col, num, year = picked
    stat, said = rng.choice([("sum", "total"), ("mean", "mean")])
    values = getattr(cols.frame.groupby(_year_of(cols.frame[col]))[num], stat)()
    if len(values) < 3 or _tied_at_top(values):
        return None
    say = Namer(rng)
    answers = [
        _number(rng.choice(["year", "peak_year"]), 0),
        _number(rng.choice([said, f"{said}_{ident(num)}"]), 2),
    ]
    question = (
        f"Which year has the highest {said} {say.col(num)}, and what is that {said}? {_report(answers)}"
    )
    code = (
        f"by_year = df.groupby({year})[{num!r}].{stat}()\n"
        f"{answers[0].name} = int(by_year.idxmax())\n"
        f"{answers[1].name} = by_year.max()"
    )
    return f"peak-year-{said}-{ident(num)}", question, answers, code


def distinct_per_group(cols: Columns, rng: random.Random) -> Drill | None:
    """The group with the most different values of a repeating text column (players per team)."""
    if not (cols.groups and cols.repeated):
        return None
    cat, col = rng.choice(cols.groups), rng.choice(cols.repeated)
    counts = cols.frame.groupby(cat)[col].nunique()
    if _tied_at_top(counts):
        return None
    say = Namer(rng)
    answers = [
        _group_answer(say.answer(["group", "most"], cat), cols.frame[cat]),
        _number(rng.choice(["n", "distinct"]), 0),
    ]
    question = (
        f"Which {say.col(cat)} has the most distinct {say.col(col)} values, and how many does it have? "
        f"{_report(answers)}"
    )
    code = (
        f"counts = df.groupby({cat!r})[{col!r}].nunique()\n"
        f"{answers[0].name} = counts.idxmax()\n"
        f"{answers[1].name} = int(counts.max())"
    )
    return f"distinct-{ident(col)}-by-{ident(cat)}", question, answers, code


def top_row(cols: Columns, rng: random.Random) -> Drill | None:
    if not (cols.labels and cols.numeric):
        return None
    label, num = rng.choice(cols.labels), rng.choice(cols.numeric)
    if _tied_at_top(cols.frame[num]):
        return None
    say = Namer(rng)
    answers = [_text(say.answer(["name", "top"], label)), _number(say.answer(["value", "highest"], num), 2)]
    if answers[0].name == answers[1].name:
        return None
    question = (
        f"Which {say.col(label)} has the highest {say.col(num)}, and what is its {say.col(num)}? "
        f"{_report(answers)}"
    )
    code = (
        f"row = df.loc[df[{num!r}].idxmax()]\n"
        f"{answers[0].name} = row[{label!r}]\n"
        f"{answers[1].name} = row[{num!r}]"
    )
    return f"top-{ident(label)}-by-{ident(num)}", question, answers, code


def most_common(cols: Columns, rng: random.Random) -> Drill | None:
    if not cols.groups:
        return None
    cat = rng.choice(cols.groups)
    counts = cols.frame[cat].value_counts()
    if counts.iloc[0] == counts.iloc[1]:
        return None
    say = Namer(rng)
    answers = [_group_answer(say.answer(["most_common", "mode"], cat), cols.frame[cat]), _number("rows", 0)]
    if answers[0].name == answers[1].name:
        return None
    question = f"What is the most common {say.col(cat)}, and how many rows have it? {_report(answers)}"
    code = (
        f"counts = df[{cat!r}].value_counts()\n{answers[0].name} = counts.idxmax()\nrows = int(counts.max())"
    )
    return f"most-common-{ident(cat)}", question, answers, code


def gaps(cols: Columns, rng: random.Random) -> Drill | None:
    if not cols.gappy:
        return None
    col = rng.choice(cols.gappy)
    answers = [_number("missing", 0), _number("pct_missing", 1, "percent")]
    question = (
        f"How many values of {Namer(rng).col(col)} are missing, and what percentage of the rows is that? "
        "Report @missing[value] and @pct_missing[value] rounded to 1 decimal."
    )
    code = f"missing = int(df[{col!r}].isna().sum())\npct_missing = missing / len(df) * 100"
    return f"missing-{ident(col)}", question, answers, code


def share_where(cols: Columns, rng: random.Random) -> Drill | None:
    """A percentage of rows meeting a numeric condition, among the rows where the value is known."""
    if not cols.numeric:
        return None
    num = rng.choice(cols.numeric)
    cut = _cut(float(cols.frame[num].quantile(rng.choice([0.2, 0.5, 0.8]))))
    op, said = rng.choice([("<=", "at most"), (">", "above")])
    name = rng.choice(["pct", "share", f"pct_{ident(num)}"])
    answers = [_number(name, 2, "percent")]
    say = Namer(rng)
    condition = f"{num} {op} {cut}" if rng.random() < 0.5 else f"{say.col(num)} {said} {cut}"
    question = (
        f"Among rows with a recorded {say.col(num)}, what percentage have {condition}? {_report(answers)}"
    )
    code = f"known = df[{num!r}].dropna()\n{name} = (known {op} {cut}).mean() * 100"
    return f"pct-{ident(num)}-{'le' if op == '<=' else 'gt'}", question, answers, code


def median_multiple(cols: Columns, rng: random.Random) -> Drill | None:
    """The median of a column, and how many rows exceed a multiple of it."""
    if not cols.numeric:
        return None
    num = rng.choice(cols.numeric)
    middle = cols.frame[num].median()
    if not middle > 0:
        return None
    times = rng.choice([1.5, 2])
    if not (cols.frame[num] > times * middle).any():
        return None  # a count of zero teaches nothing
    say = Namer(rng)
    answers = [_number(say.answer(["median", f"median_{ident(num)}"], num), 2), _number("n_high", 0)]
    if answers[0].name == answers[1].name:
        return None
    question = (
        f"What is the median {say.col(num)}, and how many rows have {say.col(num)} above {times} times that "
        f"median? Report @{answers[0].name}[value] rounded to 2 decimals and @n_high[value]."
    )
    median = answers[0].name
    code = f"{median} = df[{num!r}].median()\nn_high = int((df[{num!r}] > {times} * {median}).sum())"
    return f"median-{ident(num)}-times-{times}", question, answers, code


def line_fit(cols: Columns, rng: random.Random) -> Drill | None:
    """A straight-line least-squares fit of one column on another: slope, intercept or R-squared."""
    if len(cols.numeric) < 2:
        return None
    x, y = rng.sample(cols.numeric, 2)
    wanted = rng.choice([["slope", "intercept"], ["slope", "r2"], ["r2"], ["slope"]])
    answers = [_number(name, 3) for name in wanted]
    say = Namer(rng)
    question = (
        f"Fit an ordinary least squares line of {say.col(y)} on {say.col(x)} (with an intercept). "
        + {"slope": "What is its slope", "r2": "What is its R-squared"}[wanted[0]]
        + {1: "?", 2: f" and its {'intercept' if 'intercept' in wanted else 'R-squared'}?"}[len(wanted)]
        + f" {_report(answers)}"
    )
    lines = [
        "import numpy as np",
        f"fit = df[[{x!r}, {y!r}]].dropna()",
        f"slope, intercept = np.polyfit(fit[{x!r}], fit[{y!r}], 1)",
    ]
    if "r2" in wanted:
        lines.append(f"r2 = fit[{x!r}].corr(fit[{y!r}]) ** 2")
    return f"fit-{ident(y)}-on-{ident(x)}-{'-'.join(wanted)}", question, answers, "\n".join(lines)


def rule_accuracy(cols: Columns, rng: random.Random) -> Drill | None:
    """A one-threshold rule for a two-valued column, and the percentage of rows it gets right."""
    pairs = [c for c in cols.groups if cols.frame[c].nunique() == 2]
    if not (pairs and cols.numeric):
        return None
    cat, num = rng.choice(pairs), rng.choice(cols.numeric)
    level = rng.choice(sorted(cols.frame[cat].dropna().unique().tolist(), key=str))
    cut = _cut(float(cols.frame[num].median()))
    op = rng.choice([">", "<="])
    name = rng.choice(["accuracy", "pct_correct"])
    answers = [_number(name, 2, "percent")]
    say = Namer(rng)
    question = (
        f"Predict {say.col(cat)} = {level} when {num} {op} {cut}, and the other value otherwise. "
        f"What percentage of rows does this rule get right? {_report(answers)}"
    )
    code = (
        f"rows = df.dropna(subset=[{cat!r}, {num!r}])\n"
        f"predicted = rows[{num!r}] {op} {cut}\n"
        f"actual = rows[{cat!r}] == {_value(level)}\n"
        f"{name} = (predicted == actual).mean() * 100"
    )
    return f"rule-{ident(cat)}-{ident(num)}", question, answers, code


KINDS: list[Callable[[Columns, random.Random], Drill | None]] = [
    best_group,
    group_means,
    threshold_means,
    share,
    count_above,
    correlation,
    strongest,
    yearly,
    top_row,
    most_common,
    gaps,
    share_where,
    median_multiple,
    line_fit,
    rule_accuracy,
    peak_year,
    distinct_per_group,
]


def drill_tasks(spec: Table, frame: pd.DataFrame, count: int, seed: int = 0) -> list[Task]:
    """Up to ``count`` distinct drills for one dataset, the kinds taking turns: every kind the columns
    allow once (in a seeded random order) before any kind twice, and so on."""
    rng = random.Random(f"{spec.name}:{seed}")
    cols = Columns(frame)
    read = f"import pandas as pd\ndf = pd.read_csv({spec.csv!r})\n"
    tasks: dict[str, Task] = {}
    added = True
    while added and len(tasks) < count:  # a round in which no kind has a new drill is the last
        added = False
        for kind in rng.sample(KINDS, len(KINDS)):
            if len(tasks) >= count:
                break
            for _ in range(6):  # a few draws, for a drill this dataset does not have yet
                drill = kind(cols, rng)
                if drill is None:
                    continue
                slug, question, answers, code = drill
                slug = "drill-" + re.sub(r"[^a-z0-9-]+", "-", slug.replace("_", "-").lower()).strip("-")[:60]
                task_id = f"{spec.name}/{slug}"
                if task_id not in tasks:
                    tasks[task_id] = Task(
                        id=task_id,
                        dataset=spec.name,
                        kind="closed",
                        question=question,
                        answers=answers,
                        reference_code=read + code + "\n",
                    )
                    added = True
                    break
    return list(tasks.values())


def prepared_drills(spec: Table, csv_path: Path, count: int, seed: int = 0) -> list[PreparedTask]:
    """Drills with their expected answers; a drill whose answer is not a finite value is left out."""
    tasks = drill_tasks(spec, pd.read_csv(csv_path), count, seed)
    jobs = [reference_job(task, csv_path.parent) for task in tasks]
    prepared = []
    for task, output in zip(tasks, run_references(jobs), strict=True):
        values = output.get("values")
        if values is None or not all(_sound(values[a.name], a) for a in task.answers):
            continue
        prepared.append(PreparedTask(task=task, split=spec.split, csv_path=csv_path, expected=values))
    return prepared


def _sound(value: float | str, answer: Answer) -> bool:
    if answer.kind == "text":
        return isinstance(value, str) and value.strip() != ""
    return isinstance(value, float) and value == value and abs(value) != float("inf")
