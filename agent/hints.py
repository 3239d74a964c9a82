"""One-line hints appended to a failed cell's output, for the mistakes small models repeat.

A small model that indexes a column the file does not have (``df['vehicle_class']`` where the column
is ``class``) tends to send the same cell again and again: the traceback names the missing key but
not the columns that exist. The loop knows the columns from the preview of each input file, so it
adds them to the error, with the nearest names. Likewise for a text column caught in a numeric
computation (``could not convert string to float: 'malignant'``: pandas 2 no longer drops text
columns silently), for a value used as a column (``df['malignant']`` where ``malignant`` is a
value of ``diagnosis``), for ``.dt`` on dates still read as text, for a column name used as a bare
variable (``name 'wind' is not defined``), for a column of the file indexed on a Series or a
selection without it (``ozone.groupby(month)['Ozone']``), or on a table read with ``skiprows=1``
(its header row skipped, the first data row became the column names), for ``df.corr('medv')``, and
for a method compared or indexed without its parentheses (``.size >= 1``).

Hints only add text after the traceback; whether a failure counts as the same failure again is
decided on the error itself, so a hint never changes when the loop stops.
"""

from __future__ import annotations

import ast
import difflib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from agent.preview import is_text
from sandbox.result import CellError

MAX_COLUMNS = 40  # columns listed in a hint; wider files are cut with a count

_QUOTED = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)\"""")
_NOT_FOUND = re.compile(r"^(?:Columns? not found: )(.+)$")
_NOT_DEFINED = re.compile(r"^name '([^']+)' is not defined$")
_NOT_FLOAT = re.compile(r"^could not convert string to float: (.+)$")
_NONE_OF = re.compile(r"^None of \[Index\((\[.*?\])")
_CORR_CALL = re.compile(r"\.corr\(\s*(['\"])([^'\"]+)\1")
_UNCALLED = re.compile(r"instances of '(?:method|builtin_function_or_method)'|'method' object")
_METHOD_NO_CALL = re.compile(r"\.(size|count|sum|mean|median|max|min|std|nunique|idxmax|idxmin)\b(?!\s*\()")


@dataclass(frozen=True)
class Read:
    """A ``pd.read_csv`` call that loses the file's header row: the file and the argument that does it."""

    file: str
    argument: str  # as written: ``skiprows=1``
    effect: str  # what it did to the columns, in words


def read_after(code: str, before: Read | None = None) -> Read | None:
    """The header-dropping read that stands once ``code`` has run, given the one that stood ``before``.

    The cell's last ``read_csv``/``read_table`` call decides: a ``Read`` when it skips the header row
    (``skiprows=...``, ``header=None``, ``header=1``), None when it reads the file as it is. A cell that
    reads no file (or does not parse) leaves ``before`` standing."""
    call = _last_read_call(code)
    return before if call is None else _header_dropped_by(call)


def _last_read_call(code: str) -> ast.Call | None:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("read_csv", "read_table")
    ]
    return max(calls, key=lambda node: (node.lineno, node.col_offset), default=None)


def _header_dropped_by(call: ast.Call) -> Read | None:
    file = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
    for keyword in call.keywords:
        value = keyword.value
        drops = (keyword.arg == "skiprows" and _skips_first_row(value)) or (
            keyword.arg == "header"
            and isinstance(value, ast.Constant)
            and (value.value is None or (isinstance(value.value, int) and value.value >= 1))
        )
        if drops and isinstance(file, str):
            if keyword.arg == "skiprows":
                effect = "its header line was skipped and a row of data became the column names"
            elif value.value is None:
                effect = "its header line was read as data and the columns are numbered 0, 1, 2, ..."
            else:
                effect = f"line {value.value} of the file, not its header line, became the column names"
            return Read(file, f"{keyword.arg}={ast.unparse(value)}", effect)
    return None


def _skips_first_row(value: ast.expr) -> bool:
    """Whether a ``skiprows`` value skips line 0, the header: ``1``, ``[0]``, ``range(2)``; not
    ``range(1, 10)`` or a function (those may keep it)."""
    if isinstance(value, ast.Constant):
        return isinstance(value.value, int) and not isinstance(value.value, bool) and value.value >= 1
    if isinstance(value, ast.List | ast.Tuple | ast.Set):
        return any(isinstance(item, ast.Constant) and item.value == 0 for item in value.elts)
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "range" and value.args:
        start = value.args[0]
        return len(value.args) == 1 or (isinstance(start, ast.Constant) and start.value == 0)
    return False


def error_hint(error: CellError, tables: Mapping[str, pd.DataFrame], read: Read | None = None) -> str | None:
    """A hint for ``error`` given a sample of each input table (by file name), or None; ``read`` is
    the cells' last file read when it dropped the header row."""
    if not tables:
        return None
    if error.ename == "KeyError":
        keys = _keys(error.evalue)
        if read is not None and set(keys) & set(_columns(tables).get(read.file, [])):
            return _header_dropped(read)
        return _missing_columns(keys, tables, "not found in axis" in error.evalue)
    if error.ename == "NameError" and (match := _NOT_DEFINED.match(error.evalue)):
        return _bare_name(match.group(1), tables)
    if error.ename in ("ValueError", "TypeError") and (match := _NOT_FLOAT.match(error.evalue)):
        return _text_in_numbers(_literal(match.group(1)), tables)
    if error.ename == "AttributeError" and error.evalue.startswith("Can only use .dt accessor"):
        return _text_dates(tables)
    if _is_corr_misuse(error):
        return _corr_with_a_column(error, tables)
    if error.ename == "TypeError" and _UNCALLED.search(error.evalue):
        return _uncalled_method(error)
    return None


def _keys(evalue: str) -> list[str]:
    """The string keys a KeyError names, in its pandas and plain forms.

    ``'price'``; ``"['a', 'b'] not in index"``; ``"['diagnosis'] not found in axis"``;
    ``'Column not found: age'``. Integer and other non-string keys give nothing.
    """
    text = _literal(evalue)
    if isinstance(text, list):  # ``KeyError: ['a']`` from dropna(subset=...)
        return [v for v in text if isinstance(v, str)]
    if not isinstance(text, str) or text == evalue.strip():  # not a quoted key: np.int64(0), 3, ...
        return []
    if match := _NONE_OF.match(text):  # "None of [Index(['a', 'b'], dtype='str')] are in the [columns]"
        value = _literal(match.group(1))
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    if match := _NOT_FOUND.match(text):
        names = [a or b for a, b in _QUOTED.findall(match.group(1))] or [match.group(1)]
        return [n.strip() for n in names if n.strip()]
    if text.startswith("[") and ("not in index" in text or "not found in axis" in text):
        inside = text[: text.rfind("]") + 1]
        value = _literal(inside)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    return [text]


def _literal(text: str) -> object:
    """A Python literal as written in an error message, or the text itself when it is not one."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text.strip()


def _columns(tables: Mapping[str, pd.DataFrame]) -> dict[str, list[str]]:
    return {name: [str(c) for c in frame.columns] for name, frame in tables.items()}


def _all_columns(tables: Mapping[str, pd.DataFrame]) -> set[str]:
    """Every column name of every input table."""
    return {c for cols in _columns(tables).values() for c in cols}


def _nearest(name: str, columns: list[str]) -> list[str]:
    """Columns the model probably meant: same name in another case, a close spelling, one word of
    it (``vehicle_class`` -> ``class``), or its initials (``home_runs`` -> ``hr``)."""
    folded = {c.lower(): c for c in columns}
    if name.lower() in folded:
        return [folded[name.lower()]]
    close = difflib.get_close_matches(name.lower(), list(folded), n=3, cutoff=0.6)
    words = [w for w in re.split(r"[^0-9a-z]+", name.lower()) if w]
    parts = [c for key, c in folded.items() if key in words and len(key) > 2]
    initials = "".join(w[0] for w in words)
    short = [folded[initials]] if len(words) > 1 and initials in folded else []
    return list(dict.fromkeys([folded[c] for c in close] + parts + short))[:3]


def _listing(columns: list[str]) -> str:
    shown = ", ".join(columns[:MAX_COLUMNS])
    more = len(columns) - MAX_COLUMNS
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _missing_columns(
    keys: list[str], tables: Mapping[str, pd.DataFrame], evalue_is_drop: bool = False
) -> str | None:
    columns = _columns(tables)
    every = {c for cols in columns.values() for c in cols}
    missing = [k for k in keys if k not in every]
    if not missing:
        # A column the file has, missing from a frame the code built; or ``df.drop('col')``, which
        # looks for a row label unless told otherwise.
        if keys and evalue_is_drop:
            shown = ", ".join(repr(k) for k in keys)
            return f"Hint: to drop a column, name the axis: df.drop(columns=[{shown}])."
        return _not_in_this_frame(keys[0], columns) if keys else None
    names = ", ".join(f"`{k}`" for k in missing)
    where = f"{next(iter(columns))}" if len(columns) == 1 else "any data file"
    lines = [f"Hint: {names} {'is not a column' if len(missing) == 1 else 'are not columns'} of {where}."]
    values = {k: holder for k in missing if (holder := _value_holder(k, tables))}
    for key, column in values.items():
        lines.append(
            f"`{key}` is a value of the column `{column}`: select those rows with "
            f"df[df[{column!r}] == {key!r}]."
        )
    names = [k for k in missing if k not in values]
    guesses = list(dict.fromkeys(g for k in names for g in _nearest(k, sorted(every))))
    if guesses:
        lines.append("Did you mean " + " or ".join(f"`{g}`" for g in guesses) + "?")
    for file, cols in columns.items():
        lines.append(f"Columns of {file}: {_listing(cols)}")
    return "\n".join(lines)


def _not_in_this_frame(key: str, columns: dict[str, list[str]]) -> str:
    """A column of the file indexed on something that lacks it: one column (a Series, as in
    ``ozone.groupby(month)['Ozone']``) or a selection made without it."""
    file = next(file for file, cols in columns.items() if key in cols)
    return (
        f"Hint: `{key}` is a column of {file}, but what this line indexes does not have it: a single "
        f"column (a Series) or a selection made without `{key}`. Take it from the whole table, "
        f"df[{key!r}], or keep it when selecting (if df itself was replaced by a selection, read the "
        "file again)."
    )


def _header_dropped(read: Read) -> str:
    return (
        f"Hint: {read.file} was last read with {read.argument}: {read.effect}, so no column has its "
        f"real name. Read it as it is: df = pd.read_csv({read.file!r})."
    )


def _text_columns(frame: pd.DataFrame) -> list:
    return [col for col in frame.columns if is_text(frame[col])]


def _value_holder(key: str, tables: Mapping[str, pd.DataFrame]) -> str | None:
    """The text column whose values include ``key`` (``'malignant'`` in ``diagnosis``), if any."""
    for frame in tables.values():
        for col in _text_columns(frame):
            if frame[col].astype(str).eq(key).any():
                return str(col)
    return None


def _is_corr_misuse(error: CellError) -> bool:
    """``df.corr('medv', ...)``: DataFrame.corr takes the method first, not a column."""
    if error.ename == "TypeError":
        return "corr() got multiple values for argument 'method'" in error.evalue
    return error.ename == "ValueError" and error.evalue.startswith("method must be either 'pearson'")


def _corr_with_a_column(error: CellError, tables: Mapping[str, pd.DataFrame]) -> str:
    every = _all_columns(tables)
    match = _CORR_CALL.search(error.traceback)
    column = match.group(2) if match and match.group(2) in every else "col"
    return (
        "Hint: DataFrame.corr() takes no column name. Each column's correlation with one column: "
        f"df.corr(numeric_only=True)[{column!r}]; two columns: df['a'].corr(df['b'])."
    )


def _uncalled_method(error: CellError) -> str:
    """A method used as a value: ``.size >= 1`` where ``.size() >= 1`` was meant."""
    match = _METHOD_NO_CALL.search(_failing_line(error.traceback))
    what = (
        f"`.{match.group(1)}` is a method: call it, `.{match.group(1)}()`"
        if match
        else "A method was used without calling it: add the parentheses"
    )
    return f"Hint: {what}."


def _failing_line(traceback: str) -> str:
    """The source line under the last ``Cell In[n], line m`` of a traceback, or ''."""
    lines = traceback.splitlines()
    marks = [i for i, line in enumerate(lines) if line.lstrip().startswith("Cell In[")]
    if not marks or marks[-1] + 1 >= len(lines):
        return ""
    return lines[marks[-1] + 1]


def _bare_name(name: str, tables: Mapping[str, pd.DataFrame]) -> str | None:
    columns = sorted(_all_columns(tables))
    guesses = [g for g in _nearest(name, columns) if g.lower() == name.lower() or len(name) > 3]
    if not guesses:
        return None
    column = guesses[0]
    return f"Hint: `{name}` is not a variable. To use the column, index the data frame: df[{column!r}]."


def _text_dates(tables: Mapping[str, pd.DataFrame]) -> str:
    """``.dt`` on a column read from CSV as text: name the text columns that parse as dates."""
    dates = []
    for frame in tables.values():
        for col in _text_columns(frame):
            values = frame[col].dropna().head(50).astype(str)
            if len(values) and _parses_as_dates(values):
                dates.append(str(col))
    col = dates[0] if dates else "the column"
    target = f"df[{col!r}]" if dates else "df[column]"
    named = f"`{col}` holds" if dates else "The column holds"
    return (
        f"Hint: {named} text, not dates (a CSV file stores dates as text). Convert it first: "
        f"{target} = pd.to_datetime({target}); then .dt works."
    )


def _parses_as_dates(values: pd.Series) -> bool:
    if not values.str.contains(r"\d", regex=True).all() or values.str.fullmatch(r"-?\d+(\.\d+)?").all():
        return False  # plain numbers are not dates
    with warnings.catch_warnings():  # mixed formats fall back to dateutil: fine for a yes/no
        warnings.simplefilter("ignore", UserWarning)
        return bool(pd.to_datetime(values, errors="coerce").notna().all())


def _text_in_numbers(value: object, tables: Mapping[str, pd.DataFrame]) -> str:
    """Name the text column the value came from, and the columns that are numbers."""
    shown = f"{value!r}" if isinstance(value, str) else "text"
    holder = _value_holder(value, tables) if isinstance(value, str) else None
    what = f"`{holder}` is a text column" if holder else "A text column"
    lines = [f"Hint: {what} (values like {shown}): it cannot be used as a number."]
    for file, frame in tables.items():
        numbers = [str(c) for c in frame.select_dtypes("number").columns]
        if numbers:
            lines.append(f"Numeric columns of {file}: {_listing(numbers)}")
    lines.append("For a statistic over the whole table, pass numeric_only=True: df.corr(numeric_only=True).")
    return "\n".join(lines)
