"""Hints for failed cells: the error texts pandas and Python really raise, matched to the input columns."""

import pandas as pd
import pytest

from agent.hints import MAX_COLUMNS, Read, error_hint, read_after
from sandbox.result import CellError

CARS = pd.DataFrame(
    {
        "manufacturer": ["audi", "ford", "audi", "honda"],
        "displ": [1.8, 4.0, 2.0, 1.6],
        "class": ["compact", "suv", "compact", "subcompact"],
        "hwy": [29, 17, 28, 33],
    }
)
TABLES = {"mpg.csv": CARS}


def raised(code: str, **names) -> CellError:
    """The CellError a real evaluation of ``code`` raises, as the kernel reports it (name, str)."""
    with pytest.raises(Exception) as info:
        exec(code, {"pd": pd, "df": CARS.copy(), **names})
    return CellError(ename=type(info.value).__name__, evalue=str(info.value))


@pytest.mark.parametrize(
    ("code", "missing", "nearest"),
    [
        ("df['vehicle_class']", "vehicle_class", "class"),
        ("df[['hwy', 'disp']]", "disp", "displ"),
        ("df.groupby('Class')", "Class", "class"),
        ("df.drop(columns=['Hwy'])", "Hwy", "hwy"),
    ],
)
def test_a_missing_column_lists_the_columns_and_the_nearest(code, missing, nearest):
    hint = error_hint(raised(code), TABLES)
    assert hint.startswith(f"Hint: `{missing}` is not a column of mpg.csv.")
    assert f"Did you mean `{nearest}`?" in hint
    assert hint.endswith("Columns of mpg.csv: manufacturer, displ, class, hwy")


def test_a_missing_column_with_nothing_near_still_lists_the_columns():
    hint = error_hint(raised("df['age']"), TABLES)
    assert "Did you mean" not in hint and "Columns of mpg.csv:" in hint


def test_keys_that_are_not_column_names_get_no_hint():
    assert error_hint(raised("df.set_index('hwy').loc[99]"), TABLES) is None  # an integer row label
    assert error_hint(raised("df.loc[df.hwy > 99, 'hwy'].reset_index(drop=True)[0]"), TABLES) is None


@pytest.mark.parametrize(
    "code",
    [
        "df[['hwy']]['displ']",  # a selection without the column
        "df['hwy']['displ']",  # one column, a Series, indexed by a column name
        "df['hwy'].groupby(df['class'])['displ']",  # KeyError: 'Column not found: displ'
    ],
)
def test_a_column_of_the_file_missing_from_what_the_line_indexes(code):
    hint = error_hint(raised(code), TABLES)
    assert hint.startswith(
        "Hint: `displ` is a column of mpg.csv, but what this line indexes does not have it"
    )
    assert "df['displ']" in hint


def test_dropping_a_column_without_its_axis():
    hint = error_hint(raised("df.drop('class')"), TABLES)
    assert hint == "Hint: to drop a column, name the axis: df.drop(columns=['class'])."


def test_text_in_a_numeric_computation_names_the_column():
    hint = error_hint(raised("df.corr()"), TABLES)
    assert hint == (
        "Hint: `manufacturer` is a text column (values like 'audi'): it cannot be used as a number.\n"
        "Numeric columns of mpg.csv: displ, hwy\n"
        "For a statistic over the whole table, pass numeric_only=True: df.corr(numeric_only=True)."
    )


def test_a_column_used_as_a_variable():
    hint = error_hint(raised("print(displ.mean())"), TABLES)
    assert hint == "Hint: `displ` is not a variable. To use the column, index the data frame: df['displ']."
    assert error_hint(raised("print(g)"), TABLES) is None  # a short name close to nothing


def test_other_errors_and_no_tables_give_nothing():
    assert error_hint(raised("1 / 0"), TABLES) is None
    assert error_hint(raised("df['vehicle_class']"), {}) is None


def test_wide_files_are_listed_with_a_count():
    wide = pd.DataFrame({f"c{i}": [i] for i in range(MAX_COLUMNS + 5)})
    hint = error_hint(raised("df['nope']", df=wide), {"wide.csv": wide})
    assert hint.endswith(f"c{MAX_COLUMNS - 1}, ... (5 more)")


def test_several_files_are_each_listed():
    other = pd.DataFrame({"id": [1], "price": [2.0]})
    hint = error_hint(raised("df['vehicle_class']"), {"mpg.csv": CARS, "prices.csv": other})
    assert hint.startswith("Hint: `vehicle_class` is not a column of any data file.")
    assert "Columns of prices.csv: id, price" in hint


def test_dt_on_dates_read_as_text_names_the_column():
    weather = pd.DataFrame(
        {"date": ["2012-01-01", "2012-01-02"], "temp_max": [12.8, 10.6], "code": ["1", "2"]}
    )
    hint = error_hint(raised("df['date'].dt.month", df=weather), {"seattle-weather.csv": weather})
    assert hint == (
        "Hint: `date` holds text, not dates (a CSV file stores dates as text). Convert it first: "
        "df['date'] = pd.to_datetime(df['date']); then .dt works."
    )
    plain = pd.DataFrame({"code": ["1", "2"], "temp": [1.0, 2.0]})
    assert "Convert it first: df[column] = pd.to_datetime(df[column])" in error_hint(
        raised("df['code'].dt.month", df=plain), {"plain.csv": plain}
    )


def test_the_none_of_form_and_the_list_form_name_their_columns():
    hint = error_hint(raised("df[['home_runs', 'hwy']]"), TABLES)  # pandas: "None of [Index([...])] ..."
    assert hint.startswith("Hint: `home_runs` is not a column of mpg.csv.")
    hint = error_hint(raised("df.dropna(subset=['Hwy'])"), TABLES)  # KeyError: ['Hwy']
    assert hint.startswith("Hint: `Hwy` is not a column of mpg.csv.\nDid you mean `hwy`?")


def test_initials_of_a_long_name_find_the_short_column():
    batting = pd.DataFrame({"year": [1990, 1991], "hr": [3, 5], "h": [40, 52]})
    hint = error_hint(raised("df['home_runs']", df=batting), {"baseball.csv": batting})
    assert "Did you mean `hr`?" in hint


def test_a_value_used_as_a_column_is_pointed_to_its_column():
    hint = error_hint(raised("df['suv']"), TABLES)
    assert hint.splitlines()[:2] == [
        "Hint: `suv` is not a column of mpg.csv.",
        "`suv` is a value of the column `class`: select those rows with df[df['class'] == 'suv'].",
    ]
    assert "Did you mean" not in hint


def in_a_cell(code: str, **names) -> CellError:
    """As ``raised``, with the traceback's cell line as the kernel writes it."""
    error = raised(code, **names)
    return error.model_copy(
        update={"traceback": f"Traceback (most recent call last):\n\n  Cell In[3], line 1\n    {code}\n"}
    )


def test_corr_given_a_column_shows_how_to_correlate_with_it():
    for code in ("df.corr('hwy', method='pearson')", "df.corr('hwy', numeric_only=True)"):
        assert error_hint(in_a_cell(code), TABLES) == (
            "Hint: DataFrame.corr() takes no column name. Each column's correlation with one column: "
            "df.corr(numeric_only=True)['hwy']; two columns: df['a'].corr(df['b'])."
        )


def test_a_method_used_without_its_parentheses():
    hint = error_hint(in_a_cell("(df.groupby('class').size >= 1).sum()"), TABLES)
    assert hint == "Hint: `.size` is a method: call it, `.size()`."
    hint = error_hint(raised("df['hwy'].max[0]"), TABLES)  # no traceback line to read
    assert hint == "Hint: A method was used without calling it: add the parentheses."


def test_several_missing_columns_in_one_key():
    hint = error_hint(raised("df[['vehicle_class', 'Hwy']]"), TABLES)
    assert hint.startswith(
        "Hint: `vehicle_class`, `Hwy` are not columns of mpg.csv.\nDid you mean `class` or `hwy`?"
    )


@pytest.mark.parametrize(
    ("code", "argument"),
    [
        ("df = pd.read_csv('mpg.csv', skiprows=1)", "skiprows=1"),
        ("df = pd.read_csv('mpg.csv',\n                 skiprows=[0])", "skiprows=[0]"),
        ("df = pd.read_csv('mpg.csv', header=None)", "header=None"),
        ("x = 1\ndf = pd.read_csv('mpg.csv', header=2)", "header=2"),
    ],
)
def test_a_table_read_without_its_header_row_is_named_as_the_cause(tmp_path, code, argument):
    # Seen with the tuned 1.5B: "reload the file; ignore the first row as a header", then seven
    # KeyErrors on columns the file has, each answered by the hint about Series and selections.
    CARS.to_csv(tmp_path / "mpg.csv", index=False)
    read = read_after(code)
    assert read == Read("mpg.csv", argument, read.effect) and read.effect
    names = {"pd": pd}
    exec(code.replace("'mpg.csv'", repr(str(tmp_path / "mpg.csv"))), names)
    with pytest.raises(KeyError) as info:
        names["df"]["displ"]  # the file's column, gone from the table as read
    hint = error_hint(CellError(ename="KeyError", evalue=str(info.value)), TABLES, read)
    assert hint.startswith(f"Hint: mpg.csv was last read with {argument}: ")
    assert hint.endswith("Read it as it is: df = pd.read_csv('mpg.csv').")
    # without that read, the same error gets the usual hint
    assert "what this line indexes" in error_hint(CellError(ename="KeyError", evalue="'displ'"), TABLES)


SKIPPED = Read("mpg.csv", "skiprows=1", "its header line was skipped")


def test_reads_that_keep_the_header_row_are_not_blamed():
    for code in (
        "df = pd.read_csv('mpg.csv')",
        "df = pd.read_csv('mpg.csv', header=0)",
        "df = pd.read_csv('mpg.csv', skiprows=range(1, 5))",  # data rows only
        "df = pd.read_csv('mpg.csv', skiprows=lambda i: i % 2)",
        "a = pd.read_csv('mpg.csv', skiprows=1)\ndf = pd.read_csv('mpg.csv')",  # the last read counts
    ):
        assert read_after(code, before=SKIPPED) is None, code  # a plain read clears the earlier one
    assert read_after("print(df.hwy.mean())", before=SKIPPED) is SKIPPED  # no read: the last one stands
    assert read_after("df = pd.read_csv('mpg.csv'", before=SKIPPED) is SKIPPED  # does not parse
    # a key that is no column of the file read that way gets the usual hint
    read = read_after("df = pd.read_csv('mpg.csv', skiprows=1)")
    hint = error_hint(CellError(ename="KeyError", evalue="'vehicle_class'"), TABLES, read)
    assert hint.startswith("Hint: `vehicle_class` is not a column of mpg.csv.")
