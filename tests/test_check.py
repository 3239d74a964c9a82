"""The answer check's parts: which cells count as evidence, and values printed under a name."""

from agent import prompts
from agent.check import answer_check, printed_values, typed_in


def test_a_cell_that_prints_typed_in_numbers_is_no_evidence():
    assert typed_in('print("corr =", round(0.470, 3))')
    assert typed_in("print(f'corr = {-0.93:.3f}')\nprint('the chart is saved')")
    assert not typed_in('print("corr =", round(corr, 3))')
    assert not typed_in("import pandas as pd\nprint(pd.read_csv('a.csv').shape)")
    assert not typed_in("print(df['x'].mean())")
    assert not typed_in("print(1 +")  # does not parse: left to count as it always did


def test_the_last_value_printed_under_each_name():
    outputs = ["corr = 0.1\nn: 4", "  corr = -0.927\n", "the corr = 5 here"]
    assert printed_values(outputs, ["corr", "n", "missing"]) == {"corr": "-0.927", "n": "4"}
    assert printed_values(["`pct` = 32.25"], ["pct"]) == {"pct": "32.25"}


def test_the_check_note_names_what_to_fix_and_what_was_printed():
    outputs = ["corr = -0.927\nn = 10"]
    assert answer_check("## Final Report\n@corr[-0.927] @n[10]", outputs, ["corr", "n"]) is None
    note = answer_check("## Final Report\n@corr[0.927]", outputs, ["corr", "n"])
    assert note.splitlines() == [
        prompts.CHECK_LEFT_OUT.format(answers="@n[...]"),
        prompts.CHECK_ANSWERS.format(answers="@corr[0.927]"),
        "Your outputs printed: n = 10; corr = -0.927.",
    ]
    # nothing printed under the name: no such line
    assert "printed" not in answer_check("## Final Report\n@r[2]", outputs, ["r"])
