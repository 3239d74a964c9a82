"""Input checks: every bad input gets one clear error before a model loads; messy-but-valid files work."""

import os

import pandas as pd
import pytest

from agent.preview import InputError, check_question, check_writable, load_input, preview_text


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.csv", "No such file"),
        (lambda d: d, "is a directory"),
        (lambda d: write(d / "e.csv", b""), "is empty"),
        (lambda d: write(d / "h.csv", b"a,b,c\n"), "no data rows"),
        (lambda d: write(d / "b.csv", bytes(range(256)) * 40), "binary file"),
        (lambda d: write(d / "x.json", b"{}"), "unsupported file type"),
        (lambda d: write(d / "n.csv", b"\n\n\n"), "no columns"),
        (lambda d: write(d / "bad.parquet", b"not parquet at all"), "cannot read as PARQUET"),
        (lambda d: write(d / "bad.xlsx", b"not a zip"), "cannot read as EXCEL"),
    ],
)
def test_bad_inputs_raise_one_clear_line(tmp_path, make, message):
    with pytest.raises(InputError, match=message) as info:
        load_input(make(tmp_path))
    assert "\n" not in str(info.value)


def test_latin1_semicolon_csv_works(tmp_path):
    path = write(tmp_path / "villes.csv", "ville;prix\nMontréal;1,5\nQuébec;2\nGenève;3\n".encode("latin-1"))
    before = path.read_bytes()
    info = load_input(path)
    assert info.delimiter == ";" and info.encoding == "latin-1"
    table = info.tables[0]
    assert list(table.frame["ville"]) == ["Montréal", "Québec", "Genève"] and table.rows == 3
    text = preview_text(info)
    assert "sep=';'" in text and "encoding='latin-1'" in text and "Montréal" in text
    assert path.read_bytes() == before


def test_tsv_excel_with_sheets_and_parquet(tmp_path):
    tsv = write(tmp_path / "t.tsv", b"a\tb\n1\t2\n3\t4\n")
    assert load_input(tsv).tables[0].frame.shape == (2, 2)
    book = tmp_path / "book.xlsx"
    with pd.ExcelWriter(book) as writer:
        pd.DataFrame({"x": [1, 2]}).to_excel(writer, sheet_name="first", index=False)
        pd.DataFrame({"y": [3, 4, 5]}).to_excel(writer, sheet_name="second", index=False)
    info = load_input(book)
    assert [(t.sheet, t.rows) for t in info.tables] == [("first", 2), ("second", 3)]
    assert "sheet_name='second'" in preview_text(info)
    parquet = tmp_path / "p.parquet"
    pd.DataFrame({"v": range(7)}).to_parquet(parquet)
    assert load_input(parquet).tables[0].rows == 7


def test_preview_shows_shape_dtypes_missing_and_head(tmp_path):
    path = write(tmp_path / "d.csv", b"name,score\nann,1.5\nbob,\ncy,3\n")
    text = preview_text(load_input(path))
    assert "Shape: 3 rows x 2 columns" in text
    assert "score: float64, 1 missing" in text
    assert "ann" in text and "Read with: df = pd.read_csv('d.csv')" in text


def test_large_csv_is_sampled_not_loaded(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as handle:
        handle.write("i,v\n")
        handle.writelines(f"{i},{i * 2}\n" for i in range(100_000))
    info = load_input(path)
    table = info.tables[0]
    assert len(table.frame) == 20_000 and table.rows == 100_000 and not table.rows_exact


def test_empty_question_and_unwritable_out_dir(tmp_path):
    with pytest.raises(InputError, match="question is empty"):
        check_question("   \n ")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() == 0:
            target = tmp_path / "file-in-the-way"
            target.write_text("x")
            with pytest.raises(InputError, match="Cannot write"):
                check_writable(target / "out")
        else:
            with pytest.raises(InputError, match="Cannot write"):
                check_writable(locked / "out")
    finally:
        locked.chmod(0o700)
