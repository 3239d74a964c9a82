"""Reading the user's data files: validation, format sniffing and the compact preview the model sees.

Everything here reads the user's files and never writes them. A problem a user can fix raises
``InputError`` with one plain line; it happens before any model is loaded.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

SUPPORTED = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "excel",
    ".xls": "excel",
    ".parquet": "parquet",
}
SAMPLE_BYTES = 1 << 20
PREVIEW_ROWS = 5
SAMPLE_ROWS = 20_000
MAX_PREVIEW_COLUMNS = 40


class InputError(ValueError):
    """A user-fixable problem with an input file or the question."""


@dataclass
class Table:
    """One table inside a file (a CSV, a Parquet file, or one Excel sheet), sampled for the preview."""

    frame: pd.DataFrame
    rows: int
    sheet: str | None = None
    rows_exact: bool = True


@dataclass
class InputFile:
    """What we learned about one input file: how to read it, and a sample of each table."""

    path: Path
    kind: str
    encoding: str | None = None
    delimiter: str | None = None
    size: int = 0
    tables: list[Table] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    def read_code(self, table: Table) -> str:
        """The pandas line that reads this table, as the model should write it."""
        if self.kind == "parquet":
            return f"pd.read_parquet({self.name!r})"
        if self.kind == "excel":
            return f"pd.read_excel({self.name!r}, sheet_name={table.sheet!r})"
        args = [repr(self.name)]
        if self.delimiter and self.delimiter != ",":
            args.append(f"sep={self.delimiter!r}")
        if self.encoding and self.encoding not in ("utf-8", "ascii"):
            args.append(f"encoding={self.encoding!r}")
        return f"pd.read_csv({', '.join(args)})"


def is_text(series: pd.Series) -> bool:
    """Whether a column holds text (object or string dtype), as a CSV column that is not numbers does."""
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def load_input(path: str | Path) -> InputFile:
    """Validate one input file and sample it; raise InputError with a plain message on any problem."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"No such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a data file")
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'}; use CSV, TSV, Excel or Parquet"
        )
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path.name} is empty")
    info = InputFile(path=path, kind=kind, size=size)
    try:
        {"csv": _load_csv, "excel": _load_excel, "parquet": _load_parquet}[kind](info)
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path.name}: cannot read as {kind.upper()}: {_one_line(exc)}") from exc
    if all(table.rows == 0 for table in info.tables):
        raise InputError(f"{path.name} has a header but no data rows")
    return info


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _load_csv(info: InputFile) -> None:
    with open(info.path, "rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    if b"\x00" in head[:8192]:
        raise InputError(f"{info.name} is a binary file, not a CSV")
    info.encoding = _detect_encoding(head)
    text = head.decode(info.encoding, errors="replace")
    info.delimiter = _sniff_delimiter(text, info.path.suffix.lower())
    try:
        frame = pd.read_csv(
            info.path, sep=info.delimiter, encoding=info.encoding, nrows=SAMPLE_ROWS, low_memory=False
        )
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{info.name} has no columns") from exc
    exact = len(frame) < SAMPLE_ROWS
    rows = len(frame) if exact else _estimate_rows(info, len(head), text)
    info.tables.append(Table(frame=frame, rows=rows, rows_exact=exact))


def _detect_encoding(head: bytes) -> str:
    """UTF-8 when it decodes (also for a sample cut mid-character), else the likeliest legacy encoding."""
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:
            return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    guess = best.encoding if best is not None else "latin-1"
    # Short samples make single-byte Western code pages indistinguishable; the common ones in
    # spreadsheets are latin-1 and its superset cp1252.
    if any(guess.startswith(p) for p in ("cp125", "iso8859", "latin", "mac_")):
        if any(0x80 <= byte <= 0x9F for byte in head):
            return "cp1252"
        return "latin-1"
    return guess


def _sniff_delimiter(text: str, suffix: str) -> str:
    if suffix == ".tsv":
        return "\t"
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _estimate_rows(info: InputFile, sample_bytes: int, text: str) -> int:
    """Rows in a large file by counting newlines in a stream (memory-safe at any size)."""
    if info.size <= 64 * SAMPLE_BYTES:
        with open(info.path, "rb") as handle:
            return max(sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 22), b"")) - 1, 0)
    lines_in_sample = max(text.count("\n"), 1)
    return int(info.size / sample_bytes * lines_in_sample)


def _load_excel(info: InputFile) -> None:
    with pd.ExcelFile(info.path) as book:
        for sheet in book.sheet_names:
            frame = pd.read_excel(book, sheet_name=sheet, nrows=SAMPLE_ROWS)
            info.tables.append(
                Table(frame=frame, rows=len(frame), sheet=str(sheet), rows_exact=len(frame) < SAMPLE_ROWS)
            )


def _load_parquet(info: InputFile) -> None:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(info.path)
    batch = next(parquet.iter_batches(batch_size=SAMPLE_ROWS), None)
    frame = batch.to_pandas() if batch is not None else parquet.schema_arrow.empty_table().to_pandas()
    info.tables.append(Table(frame=frame, rows=parquet.metadata.num_rows))


def preview_text(info: InputFile) -> str:
    """Shape, how to read it, dtypes, missing counts and the first rows: compact, for a small model."""
    blocks = []
    for table in info.tables:
        frame = table.frame
        title = f"### {info.name}" + (f" (sheet {table.sheet!r})" if table.sheet else "")
        approx = "" if table.rows_exact else "about "
        lines = [
            title,
            f"Read with: df = {info.read_code(table)}",
            f"Shape: {approx}{table.rows} rows x {frame.shape[1]} columns",
        ]
        if info.size > 200 * (1 << 20):
            lines.append(
                f"Large file ({info.size / (1 << 30):.2f} GB): read only the columns you need (usecols=...)."
            )
        columns = list(frame.columns[:MAX_PREVIEW_COLUMNS])
        missing = frame[columns].isna().sum()
        described = [
            f"  {col}: {frame[col].dtype}" + (f", {missing[col]} missing" if missing[col] else "")
            for col in columns
        ]
        lines.append("Columns:\n" + "\n".join(described))
        if frame.shape[1] > MAX_PREVIEW_COLUMNS:
            lines.append(f"  ... and {frame.shape[1] - MAX_PREVIEW_COLUMNS} more columns")
        with pd.option_context("display.width", 160, "display.max_columns", 12, "display.max_colwidth", 24):
            lines.append("First rows:\n" + frame[columns].head(PREVIEW_ROWS).to_string(max_cols=12))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def check_question(question: str) -> str:
    question = " ".join(question.split())
    if not question:
        raise InputError("The question is empty: say what you want to know about the data")
    return question


def check_writable(out_dir: Path) -> None:
    """Fail early when the output folder cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"Cannot write to output folder {out_dir}: {exc.strerror or exc}") from exc
