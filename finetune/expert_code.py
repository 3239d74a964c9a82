"""The code the expert teacher writes: inspection, cleaning, the task's computation, charts, and the
small realistic mistakes (wrong column case, a column named from the question's words, unparsed
dates, a typo) it later fixes.

Each builder returns source text; the seeded RNG picks among equivalent phrasings so that samples of
one task differ in wording but not in what they compute.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable

from finetune.drills import words
from finetune.expert_data import Column, DataView

COMMENT_RULES: list[tuple[str, tuple[str, ...]]] = [
    (
        "read_csv",
        (
            "# start again from the raw file so the exploration above cannot change the numbers",
            "# a fresh copy of the data for the actual computation",
            "# reload the file: the answer should come from the untouched data",
        ),
    ),
    ("to_datetime", ("# parse the dates first", "# the dates arrive as text; convert them")),
    ("dropna", ("# ignore rows where the values we need are missing", "# drop the missing values")),
    ("groupby", ("# aggregate per group", "# compare the groups")),
    ("corr", ("# how strongly the two move together",)),
    ("sort_values", ("# order the result",)),
]


def q(name: str) -> str:
    """A column name as a Python string literal."""
    return repr(name)


def inspect_code(view: DataView, cols: list[Column], rng: random.Random, distinct: bool = False) -> str:
    """Load the file and look at shape, missing values and the columns the task is about."""
    lines = ["import pandas as pd", "import matplotlib.pyplot as plt", "", f"df = {view.read_code}"]
    numeric = [c.name for c in cols if c.numeric][:4]
    text = [] if distinct else [c.name for c in cols if c.text and not c.date_like][:2]
    if rng.random() < 0.5:
        lines.append("print(df.shape)")
    else:
        lines.append('print(f"{len(df)} rows, {df.shape[1]} columns")')
    lines += ["missing = df.isna().sum()", 'print("missing values:", missing[missing > 0].to_dict())']
    if distinct:
        lines.append('print("distinct values:", df.nunique().to_dict())')
    if numeric:
        lines.append(f"print(df[{numeric!r}].describe().round(2))")
    for name in text:
        lines.append(
            f'print({q(name)}, df[{q(name)}].nunique(), "distinct, most common:", '
            f"df[{q(name)}].value_counts().head(3).to_dict())"
        )
    return "\n".join(lines)


def wrong_case(name: str, taken: list[str]) -> str | None:
    """The name as a hurried analyst might type it (Title_Case or lower case), if that differs."""
    for guess in ("_".join(p.capitalize() for p in name.split("_")), name.lower(), name.upper()):
        if guess != name and guess not in taken and guess.isidentifier():
            return guess
    return None


def wrong_word(name: str, taken: list[str]) -> str | None:
    """A name a model guesses from the question's words rather than the preview: the column in
    snake case (``DriveTrain`` -> ``drive_train``, ``Sepal.Length`` -> ``sepal_length``), or with a
    plural ``s`` added or dropped. None when every guess is a real column."""
    snake = words(name).replace(" ", "_")
    if name.endswith("ss"):
        plural = name + "es"
    else:
        plural = name[:-1] if name.endswith("s") and len(name) > 3 else name + "s"
    folded = {t.lower() for t in taken}
    for guess in (snake, plural):
        if guess.lower() != name.lower() and guess.lower() not in folded and guess.isidentifier():
            return guess
    return None


def column_look(name: str, numeric: bool) -> str:
    """A closer look at one column: summary statistics, or the most common values of text."""
    if numeric:
        return f"print(df[{q(name)}].describe().round(2))"
    return f"print(df[{q(name)}].value_counts().head(5))"


def dates_look(name: str) -> str:
    """Observations per year of a date column (fails while the column is still text)."""
    return f"print(df[{q(name)}].dt.year.value_counts().sort_index().head(8))"


def parse_dates(name: str) -> str:
    return f"df[{q(name)}] = pd.to_datetime(df[{q(name)}])\nprint(df[{q(name)}].min(), 'to', df[{q(name)}].max())"


def drop_missing_note(cols: list[Column]) -> str:
    names = [c.name for c in cols]
    return (
        f"complete = df.dropna(subset={names!r})\n"
        'print(len(df), "rows,", len(complete), "with all of", ' + f"{names!r})"
    )


def comment_reference(code: str, rng: random.Random) -> str:
    """The task's reference code with a short why-comment before the statements that need one."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code.strip()
    lines = code.strip("\n").splitlines()
    inserts: dict[int, str] = {}
    used: set[str] = set()
    for node in tree.body:
        segment = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for key, options in COMMENT_RULES:
            if key in segment and key not in used:
                used.add(key)
                prior = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if not prior.startswith("#"):
                    inserts[node.lineno - 1] = rng.choice(options)
                break
    out: list[str] = []
    for index, line in enumerate(lines):
        if index in inserts:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + inserts[index])
        out.append(line)
    return "\n".join(out)


def answer_prints(answers: list, typo: dict[str, str] | None = None) -> str:
    """One ``print`` per answer, ``name = value``, numbers already rounded as the task asks, so the
    report copies the printed digits instead of rounding in its head; ``typo`` swaps in a misspelt
    variable."""
    typo = typo or {}
    lines = []
    for answer in answers:
        name = answer.name
        value = typo.get(name, name)
        decimals = getattr(answer, "decimals", None)
        if getattr(answer, "kind", "number") == "number" and decimals:
            value = f"round({value}, {decimals})"
        lines.append(f'print("{name} =", {value})')
    return "\n".join(lines)


_STR = r"""('[^'\n]+'|"[^"\n]+")"""  # a quoted name, either quote
_CORR_WITH = re.compile(rf"df\.corr\(numeric_only=True\)\[{_STR}\]")
_CORR_PAIR = re.compile(rf"df\[{_STR}\]\.corr\(df\[{_STR}\]\)")
_ROWS_OF = re.compile(rf"df\.loc\[df\[{_STR}\] == {_STR}, {_STR}\]")
SLIPS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    # a column passed to DataFrame.corr, which takes the method there
    (_CORR_WITH, lambda m: f"df.corr({m.group(1)}, method='pearson')"),
    (_CORR_PAIR, lambda m: f"df.corr({m.group(1)}, {m.group(2)})"),
    # a group's value used as if it were a column
    (_ROWS_OF, lambda m: f"df[{m.group(2)}][{m.group(3)}]"),
)


def api_slip(reference: str) -> str | None:
    """The reference code with one misuse small models make and the loop hints at (a column given to
    ``df.corr``, a value used as a column), or None when its code has none of those calls."""
    for pattern, wrong in SLIPS:
        if pattern.search(reference):
            return pattern.sub(wrong, reference, count=1)
    return None


def misspell(name: str, rng: random.Random, taken: set[str]) -> str | None:
    """A plausible typo of a variable name: a dropped or doubled letter, or two letters swapped."""
    if len(name) < 4:
        return None
    options = []
    for i in range(1, len(name) - 1):
        options.append(name[:i] + name[i + 1 :])
        options.append(name[:i] + name[i] + name[i:])
        if name[i] != name[i + 1]:
            options.append(name[:i] + name[i + 1] + name[i] + name[i + 2 :])
    options = [o for o in options if o.isidentifier() and o not in taken and o != name]
    return rng.choice(options) if options else None


def plot_code(
    view: DataView, cols: list[Column], groups: list[str], rng: random.Random, about_missing: bool = False
) -> tuple[str, str]:
    """A chart that fits the columns the task is about, and words describing it."""
    cats = [g for g in groups if g in view.names] + [c.name for c in cols if c.text and not c.date_like]
    numeric = [c.name for c in cols if c.numeric and c.name not in cats]
    numeric = numeric or [c.name for c in view.columns if c.numeric and c.name not in cats][:1]
    dates = [c.name for c in cols if c.date_like]
    size = rng.choice(["(6, 4)", "(7, 4)", "(6.5, 4)"])
    if about_missing:
        body, words = _missing_bars(size)
    elif cats and numeric:
        body, words = _group_bars(cats[0], numeric[0], rng.choice(["mean", "median"]), size)
    elif dates and numeric:
        body, words = _time_line(dates[0], numeric[0], size)
    elif len(numeric) >= 2:
        body, words = (
            scatter(numeric[0], numeric[1], size),
            f"a scatter plot of {numeric[1]} against {numeric[0]}",
        )
        return body, words
    elif numeric:
        body, words = _histogram(numeric[0], rng.choice([20, 30, 40]), size)
    else:
        body, words = _top_values(cats[0] if cats else view.columns[0].name, size)
    return body + "\nplt.tight_layout()\nplt.show()", words


def _missing_bars(size: str) -> tuple[str, str]:
    body = (
        f"ax = df.isna().sum().sort_values().tail(10).plot.barh(figsize={size})\n"
        'ax.set_xlabel("missing values")\nax.set_title("Missing values per column")'
    )
    return body, "a bar chart of the missing values per column"


def _group_bars(cat: str, num: str, agg: str, size: str) -> tuple[str, str]:
    body = (
        f"ax = df.groupby({q(cat)})[{q(num)}].{agg}().sort_values().tail(12).plot.barh(figsize={size})\n"
        f'ax.set_xlabel("{agg} {num}")\nax.set_title("{agg.capitalize()} {num} by {cat}")'
    )
    return body, f"a bar chart of the {agg} {num} per {cat}"


def _time_line(date: str, num: str, size: str) -> tuple[str, str]:
    body = (
        f"series = df.assign(when=pd.to_datetime(df[{q(date)}])).sort_values('when')\n"
        f"ax = series.plot(x='when', y={q(num)}, figsize={size}, legend=False)\n"
        f'ax.set_title("{num} over time")'
    )
    return body, f"a line chart of {num} over time"


def _histogram(num: str, bins: int, size: str) -> tuple[str, str]:
    body = (
        f"ax = df[{q(num)}].plot.hist(bins={bins}, figsize={size})\nax.set_xlabel({q(num)})\n"
        f'ax.set_title("Distribution of {num}")'
    )
    return body, f"a histogram of {num}"


def _top_values(cat: str, size: str) -> tuple[str, str]:
    body = (
        f"ax = df[{q(cat)}].value_counts().head(12).plot.bar(figsize={size})\n"
        f'ax.set_title("Most common values of {cat}")'
    )
    return body, f"a bar chart of the most common values of {cat}"


def group_summary(cats: list[str], num: str) -> str:
    """Mean of ``num`` per group for a few grouping columns, one line each: ``col: g = 1.0; h = 2.0``."""
    return (
        f"for col in {cats!r}:\n"
        f"    means = df.groupby(col)[{q(num)}].mean().sort_values(ascending=False)\n"
        '    print(f"{col}: " + "; ".join(f"{g} = {v:.2f}" for g, v in means.head(6).items()))'
    )


def profile_summary(cat: str, nums: list[str]) -> str:
    """Group means of the measurements that separate the groups best (spread in standard deviations)."""
    return (
        f"table = df.groupby({q(cat)})[{nums!r}].mean()\n"
        f"spread = (table.max() - table.min()) / df[{nums!r}].std()\n"
        "for col in spread.sort_values(ascending=False).index[:5]:\n"
        '    print(f"{col}: " + "; ".join(f"{g} = {v:.2f}" for g, v in table[col].items()))'
    )


def correlation_summary() -> str:
    """The three strongest pairwise correlations among numeric columns, as ``a ~ b: r = 0.87``."""
    return (
        "corr = df.select_dtypes('number').corr()\n"
        "pairs = [(a, b, corr.loc[a, b]) for i, a in enumerate(corr.columns) for b in corr.columns[i + 1:]]\n"
        "pairs = sorted((p for p in pairs if pd.notna(p[2])), key=lambda p: -abs(p[2]))\n"
        "for a, b, r in pairs[:3]:\n"
        '    print(f"{a} ~ {b}: r = {r:.2f}")'
    )


def period_expr(col: Column, unit: str) -> str:
    """The expression giving the year (or month) of each row from a time column."""
    if col.numeric:
        return f"df[{q(col.name)}].astype(int)" if unit == "year" else f"df[{q(col.name)}]"
    return f"pd.to_datetime(df[{q(col.name)}]).dt.{unit}"


def trend_summary(time: Column, names: list[str]) -> str:
    """Yearly means of some columns, each printed as ``col: first a, last b, peak in year``."""
    return (
        f"year = {period_expr(time, 'year')}\n"
        f"yearly = df.groupby(year)[{names!r}].mean()\n"
        'print(f"{yearly.index.min()} to {yearly.index.max()}: {len(yearly)} periods")\n'
        "for col in yearly.columns:\n"
        "    s = yearly[col].dropna()\n"
        '    print(f"{col}: first {s.iloc[0]:.2f}, last {s.iloc[-1]:.2f}, peak in {s.idxmax()}")'
    )


def season_summary(month: Column, unit: str, target: str) -> str:
    """The mean of ``target`` per month, printed as the highest and lowest month."""
    return (
        f"month = {period_expr(month, unit)}\n"
        f"profile = df.groupby(month)[{q(target)}].mean()\n"
        f'print(f"{target} by month: highest in month {{profile.idxmax()}} ({{profile.max():.2f}}), '
        'lowest in month {profile.idxmin()} ({profile.min():.2f})")'
    )


def drivers_summary(target: str) -> str:
    """Correlations of every numeric column with ``target``, strongest first, as ``col: r = 0.87``."""
    return (
        f"r = df.corr(numeric_only=True)[{q(target)}].drop({q(target)}).dropna()\n"
        "for col, value in r[r.abs().sort_values(ascending=False).index].head(5).items():\n"
        '    print(f"{col}: r = {value:.2f}")'
    )


def scatter(x: str, y: str, size: str) -> str:
    return (
        f"ax = df.plot.scatter(x={q(x)}, y={q(y)}, s=12, alpha=0.6, figsize={size})\n"
        f'ax.set_title("{y} against {x}")\nplt.tight_layout()\nplt.show()'
    )


def yearly_line(name: str, size: str) -> str:
    return (
        f"ax = yearly[{q(name)}].plot(figsize={size}, marker='.')\n"
        f'ax.set_ylabel({q(name)})\nax.set_title("{name} per year")\nplt.tight_layout()\nplt.show()'
    )
