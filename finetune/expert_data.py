"""What the expert teacher reads: the data preview in the task message, the task's reference code,
and the kernel's outputs (values it printed, errors it raised).

Everything here parses text the agent loop really produced, so the expert decides from what it saw.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

NUMERIC_DTYPES = ("int", "float", "uint", "Int", "Float", "UInt")
TEXT_DTYPES = ("object", "str", "string", "category", "bool", "boolean")
# Text columns with these names hold dates (tips' "day"/"time" hold "Sun"/"Dinner": not matched).
DATE_NAME = re.compile(r"(date|timestamp|time_hour|^dt$|_at$|^year$|^period$)", re.IGNORECASE)

_READ = re.compile(r"^Read with: (\w+) = (.+)$", re.MULTILINE)
_FILE = re.compile(r"^### (\S+)", re.MULTILINE)
_SHAPE = re.compile(r"^Shape: (?:about )?(\d+) rows x (\d+) columns", re.MULTILINE)
_COLUMN = re.compile(r"^  (.+): ([\w\[\], ]+?)(?:, (\d+) missing)?$")
_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt))\b", re.MULTILINE)
_TIMEOUT = re.compile(r"timed out|kernel (?:died|restarted)", re.IGNORECASE)


@dataclass
class Column:
    """One column as the preview described it."""

    name: str
    dtype: str
    missing: int = 0

    @property
    def numeric(self) -> bool:
        return self.dtype.startswith(NUMERIC_DTYPES)

    @property
    def text(self) -> bool:
        return self.dtype.startswith(TEXT_DTYPES) or self.dtype.startswith("datetime")

    @property
    def date_like(self) -> bool:
        """Text that holds dates: the classic column someone forgets to parse."""
        return self.dtype in ("object", "str", "string") and bool(DATE_NAME.search(self.name))


@dataclass
class DataView:
    """The first data file of the task, as the preview in the first user message shows it."""

    file: str
    read_code: str
    rows: int | None
    columns: list[Column] = field(default_factory=list)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def parse_preview(message: str) -> DataView:
    """Read file name, read call, row count and columns from the task message's data preview."""
    file_match, read_match = _FILE.search(message), _READ.search(message)
    if file_match is None or read_match is None:
        raise ValueError("the task message has no data preview")
    shape = _SHAPE.search(message)
    view = DataView(
        file=file_match.group(1),
        read_code=read_match.group(2).strip(),
        rows=int(shape.group(1)) if shape else None,
    )
    block = message.split("Columns:\n", 1)[1] if "Columns:\n" in message else ""
    for line in block.splitlines():
        match = _COLUMN.match(line)
        if match is None:
            break
        view.columns.append(Column(match.group(1), match.group(2), int(match.group(3) or 0)))
    return view


def error_name(observation: str) -> str | None:
    """The exception a cell raised, read from its output; None when the cell ran cleanly."""
    names = _ERROR.findall(observation)
    if names:
        return names[-1].rsplit(".", 1)[-1]
    if "Traceback (most recent call last)" in observation or _TIMEOUT.search(observation):
        return "Error"
    return None


def printed_values(observation: str, names: list[str]) -> dict[str, str]:
    """``name = value`` lines the expert's own prints produced, for the names it is looking for."""
    found: dict[str, str] = {}
    for line in observation.splitlines():
        name, sep, value = line.partition(" = ")
        if sep and name.strip() in names:
            found[name.strip()] = value.strip()
    return found


def labelled_numbers(observation: str, marker: str) -> list[tuple[str, float]]:
    """Lines ``label<marker>number ...`` in order, e.g. ``Gentoo: mean 5076.02``."""
    rows = []
    pattern = re.compile(rf"^(.+?){re.escape(marker)}\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", re.MULTILINE)
    for label, number in pattern.findall(observation):
        rows.append((label.strip(), float(number)))
    return rows


def string_literals(code: str) -> list[str]:
    """String constants of the code in source order (used to find the columns a task touches)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    nodes.sort(key=lambda n: (n.lineno, n.col_offset))
    return [n.value for n in nodes]


def grouping_columns(code: str) -> list[str]:
    """Columns the code groups by: first string argument(s) of ``.groupby(...)`` calls."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "groupby"
        ):
            for arg in node.args[:1]:
                items = arg.elts if isinstance(arg, ast.List | ast.Tuple) else [arg]
                found += [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    return found


def relevant_columns(view: DataView, code: str, question: str) -> list[Column]:
    """Columns named in the reference code or the question, in order of first mention."""
    wanted = [s for s in string_literals(code) if view.column(s) is not None]
    spoken = question.lower()
    for col in view.columns:
        words = col.name.lower().replace("_", " ")
        if col.name not in wanted and (col.name.lower() in spoken or words in spoken) and len(col.name) > 2:
            wanted.append(col.name)
    seen: list[Column] = []
    for name in wanted:
        col = view.column(name)
        if col is not None and col not in seen:
            seen.append(col)
    return seen


def format_number(raw: str, decimals: int | None) -> str:
    """A printed number rounded to the task's stated decimals; text that is not a number is kept."""
    try:
        value = float(raw.strip().strip("'\""))
    except ValueError:
        return raw.strip()
    if decimals is None:
        value = round(value, 6)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else str(value)
    return f"{value:.{decimals}f}"
