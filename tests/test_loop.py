"""The loop against a real kernel with a scripted model."""

from agent.backends.base import BackendError
from agent.backends.scripted import ScriptedBackend
from agent.loop import RunConfig
from agent.records import read_trajectory
from agent.runner import analyze

CODE = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\nprint('cube sum', (df.sales ** 3).sum())\n```"
CUBE_SUM = sum(x**3 for x in [13, 7, 22, 5, 19, 11, 3, 17, 29, 2])  # the fixture's sales column
REPORT = f"## Final Report\n- The cube sum is {CUBE_SUM}.\n@cube_sum[{CUBE_SUM}]"


QUESTION = "What is the cube sum of sales? Report @cube_sum[value]."
OPEN = "What is the cube sum of sales?"  # asks for no @name answers


def run(tmp_path, csv, replies, question=OPEN, **config):
    backend = ScriptedBackend(replies)
    result = analyze([csv], question, tmp_path / "run", backend, RunConfig(**config))
    return result, backend


def test_code_then_report(tmp_path, small_csv):
    result, backend = run(tmp_path, small_csv, [CODE, REPORT], question=QUESTION)
    outcome = result.outcome
    assert outcome.status == "report" and outcome.turns == 2
    assert outcome.answers == {"cube_sum": str(CUBE_SUM)}
    # the model's second call saw the kernel's real output
    assert f"cube sum {CUBE_SUM}" in backend.calls[1][-1].content
    assert (
        "shop.csv" in backend.calls[0][1].content
        and "Shape: 10 rows x 3 columns" in backend.calls[0][1].content
    )
    saved = read_trajectory(result.files["trajectory"])
    assert saved == result.trajectory
    assert saved.steps[0].execution.stdout.strip() == f"cube sum {CUBE_SUM}"


def test_no_code_gets_one_nudge_then_stops(tmp_path, small_csv):
    result, backend = run(tmp_path, small_csv, ["I think sales are fine.", "Still no code.", CODE])
    assert result.outcome.status == "no_code"
    assert [s.step_kind for s in result.trajectory.steps] == ["nudge", "no_code"]
    assert "```python" in backend.calls[1][-1].content  # the nudge explains the protocol
    assert len(backend.queue) == 1


def test_same_failing_cell_stops_early(tmp_path, small_csv):
    bad = "```python\nprint(df_missing.sales.sum())\n```"
    result, _ = run(tmp_path, small_csv, [bad] * 10, max_turns=30, repeat_error_limit=3)
    assert result.outcome.status == "repeated_error"
    assert result.outcome.turns == 3 and result.outcome.errors == 3
    assert "NameError" in result.trajectory.steps[0].observation
    # the second failure gets a note; df.columns is suggested only for a KeyError
    assert "change the line the error points at" in result.trajectory.steps[1].observation
    assert "df.columns" not in result.trajectory.steps[1].observation
    missing = "```python\nimport pandas as pd\nprint(pd.read_csv('shop.csv')['salez'].sum())\n```"
    result, _ = run(tmp_path / "key", small_csv, [missing] * 3, repeat_error_limit=3)
    assert "check the column names with df.columns" in result.trajectory.steps[1].observation


LOOK = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\nprint(list(df.columns))\n```"
BROKEN_CHART = "```python\ndf['Sales'].plot()\n```"


def test_a_cell_failing_between_other_cells_gets_a_wrap_up_request(tmp_path, small_csv):
    """look, fail, look, fail, look, fail: stuck although no two failures are in a row."""
    replies = [LOOK, BROKEN_CHART] * 3 + [REPORT]
    result, backend = run(tmp_path, small_csv, replies, repeat_error_limit=3)
    outcome = result.outcome
    assert outcome.status == "report" and outcome.turns == 7 and outcome.wrap_up_turn == 6
    steps = result.trajectory.steps
    assert "same cell on turn 1" in steps[2].observation  # the repeated look is pointed out
    assert "Try a different approach" in steps[3].observation  # the second failure
    assert "Write the final report now" in steps[5].observation  # the third
    assert "Write the final report now" in backend.calls[6][-1].content
    assert "asked for on turn 6" in (result.files["report_md"]).read_text()


def test_code_after_the_wrap_up_request_ends_the_run(tmp_path, small_csv):
    replies = [LOOK, BROKEN_CHART, BROKEN_CHART, BROKEN_CHART, LOOK, REPORT]
    result, backend = run(tmp_path, small_csv, replies, repeat_error_limit=3)
    assert result.outcome.status == "repeated_error" and result.outcome.turns == 5
    assert result.outcome.wrap_up_turn == 4 and backend.queue == [REPORT]


def test_a_reply_repeating_one_line_is_cut(tmp_path, small_csv):
    looping = REPORT + "\n" + "- The numbers are back.\n" * 40
    result, _ = run(tmp_path, small_csv, [CODE, looping])
    assert result.outcome.status == "report"
    assert result.trajectory.steps[1].model_text == REPORT + "\n- The numbers are back."


def test_error_then_fix_then_report(tmp_path, small_csv):
    broken = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\nprint(df['Sales'].sum())\n```"
    fixed = "```python\nprint(df['sales'].sum())\n```"
    result, backend = run(tmp_path, small_csv, [broken, fixed, "## Final Report\n@total[128]"])
    assert result.outcome.status == "report" and result.outcome.errors == 1
    feedback = backend.calls[1][-1].content
    assert "KeyError" in feedback
    # the real columns, read from the input file, follow the traceback
    assert "Hint: `Sales` is not a column of shop.csv.\nDid you mean `sales`?" in feedback
    assert "Columns of shop.csv: city, sales, price" in feedback
    assert result.trajectory.steps[1].execution.stdout.strip() == "128"


def test_a_text_column_in_a_mean_gets_a_hint_naming_it(tmp_path, small_csv):
    failing = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\nprint(df.corr())\n```"
    fixed = "```python\nprint(df.corr(numeric_only=True).loc['sales', 'price'].round(3))\n```"
    result, backend = run(tmp_path, small_csv, [failing, fixed, "## Final Report\n- done"])
    feedback = backend.calls[1][-1].content
    assert "could not convert string to float: 'Oslo'" in feedback
    assert "Hint: `city` is a text column (values like 'Oslo')" in feedback
    assert "Numeric columns of shop.csv: sales, price" in feedback
    assert result.outcome.status == "report"


def test_a_table_read_without_its_header_gets_named_until_read_again(tmp_path, small_csv):
    skipped = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv', skiprows=1)\nprint(df['sales'].sum())\n```"
    again = "```python\nprint(df['sales'].mean())\n```"  # reads nothing: df is still the skipped one
    fixed = "```python\ndf = pd.read_csv('shop.csv')\nprint(df['sales'].sum())\n```"
    series = "```python\nprint(df['price']['sales'])\n```"
    result, backend = run(tmp_path, small_csv, [skipped, again, fixed, series, "## Final Report\n- done"])
    header = "Hint: shop.csv was last read with skiprows=1: its header line was skipped"
    assert header in backend.calls[1][-1].content and header in backend.calls[2][-1].content
    assert "df = pd.read_csv('shop.csv')." in backend.calls[1][-1].content
    assert "128" in backend.calls[3][-1].content  # the sum of sales: the plain read worked
    # after a plain read, a missing column is the usual case again
    assert header not in backend.calls[4][-1].content
    assert "`sales` is a column of shop.csv, but what this line indexes" in backend.calls[4][-1].content
    assert result.outcome.status == "report"


def test_corr_given_a_column_gets_a_hint_from_the_kernels_traceback(tmp_path, small_csv):
    failing = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\nc = df.corr('sales', method='pearson')\n```"
    fixed = "```python\nprint(df.corr(numeric_only=True)['sales'].round(3))\n```"
    result, backend = run(tmp_path, small_csv, [failing, fixed, "## Final Report\n- done"])
    feedback = backend.calls[1][-1].content
    assert "got multiple values for argument 'method'" in feedback
    assert "df.corr(numeric_only=True)['sales']" in feedback  # the column, read from the cell's line
    assert result.outcome.status == "report" and result.outcome.errors == 1


def test_a_report_leaving_out_an_asked_answer_goes_back_once(tmp_path, small_csv):
    question = "What is the cube sum of sales? Report @cube_sum[value] and @n[value]."
    forgot = f"## Final Report\n- The cube sum is {CUBE_SUM}.\n@cube_sum[{CUBE_SUM}]"
    count = "```python\nprint('n =', len(df))\n```"
    backend = ScriptedBackend([CODE, forgot, count, forgot + "\n@n[10]"])
    result = analyze([small_csv], question, tmp_path / "run", backend, RunConfig())
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "code", "report"]
    note = backend.calls[2][-1].content
    assert "leaves out @n[...]" in note and "Check these answers" not in note  # cube_sum was fine
    assert result.outcome.answers == {"cube_sum": str(CUBE_SUM), "n": "10"}
    # a question that asks for no @name answers never sends a report back for leaving them out
    result, _ = run(tmp_path / "plain", small_csv, [CODE, "## Final Report\n- Sales vary."])
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "report"]


def test_answers_sent_alone_after_the_check_complete_the_report(tmp_path, small_csv):
    # Seen with the tuned 1.5B (diabetes/obese-vs-not): sent back for leaving out its answers, the model
    # replied with only the two @name[value] lines, both right, and was nudged until the run ended.
    question = "What is the cube sum of sales? Report @cube_sum[value] and @n[value]."
    forgot = "## Final Report\n- The cube sum is large.\n- There are @n[3] rows."
    count = "```python\nprint('n =', len(df))\n```"
    alone = f"@cube_sum[{CUBE_SUM}]\n@n[10]"
    backend = ScriptedBackend([CODE, count, forgot, alone, CODE])
    result = analyze([small_csv], question, tmp_path / "run", backend, RunConfig())
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "code", "check", "report"]
    outcome = result.outcome
    assert outcome.status == "report" and outcome.answers == {"cube_sum": str(CUBE_SUM), "n": "10"}
    # the report sent back, with its answer put right where it stood and the missing one added
    assert (
        outcome.report
        == f"## Final Report\n- The cube sum is large.\n- There are @n[10] rows.\n@cube_sum[{CUBE_SUM}]"
    )
    assert result.trajectory.steps[-1].model_text == alone  # the record keeps what the model wrote
    assert str(CUBE_SUM) in result.files["report_md"].read_text()

    # ... or after a cell that computes them (statecrime/poverty-correlation, the same model)
    backend = ScriptedBackend([CODE, forgot, count, alone])
    result = analyze([small_csv], question, tmp_path / "later", backend, RunConfig())
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "code", "report"]
    assert result.outcome.answers == {"cube_sum": str(CUBE_SUM), "n": "10"}
    assert result.outcome.report.startswith("## Final Report\n- The cube sum is large.")

    # Bare answers are a report only after a check: anywhere else they get the usual nudge.
    result, _ = run(tmp_path / "early", small_csv, [CODE, alone, alone], question=question)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "nudge", "no_code"]
    # ... and a reply to the check that gives none of the asked answers is nudged too
    backend = ScriptedBackend([CODE, forgot, "I wrote the report above.", "Still."])
    result = analyze([small_csv], question, tmp_path / "none", backend, RunConfig())
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "nudge", "no_code"]


def test_answers_written_for_an_open_question_become_plain_text(tmp_path, small_csv):
    # Small models copy the system prompt's @name[value] into reports on questions that ask for none
    # (the tuned model's "find trends" report on examples/sales.csv ended with "@name[3]").
    report = f"## Final Report\n- The cube sum is @cube_sum[{CUBE_SUM}].\n\n@name[3]\n- @top[West]"
    result, _ = run(tmp_path, small_csv, [CODE, report, report])
    outcome = result.outcome
    # 3 and West are in no output: the answer check sends the report back once, as on any question
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "report"]
    assert outcome.status == "report" and outcome.answers == {}
    assert outcome.report == f"## Final Report\n- The cube sum is {CUBE_SUM}.\n\n- top: West"
    assert result.trajectory.steps[-1].model_text == report  # the record keeps what the model wrote
    markdown = result.files["report_md"].read_text()
    assert "## Answers" not in markdown and "@" not in markdown.split("## Key findings")[1].split("##")[0]


def test_max_turns(tmp_path, small_csv):
    result, _ = run(tmp_path, small_csv, ["```python\nprint(1)\n```"] * 5, max_turns=2)
    assert result.outcome.status == "max_turns" and result.outcome.turns == 2


def test_backend_fault_keeps_the_trajectory(tmp_path, small_csv):
    def down(messages):
        raise BackendError("cannot reach http://127.0.0.1:9/v1")

    result, _ = run(tmp_path, small_csv, [CODE, down])
    assert result.outcome.status == "error" and "cannot reach" in result.error
    saved = read_trajectory(result.files["trajectory"])
    assert saved.outcome.status == "error" and len(saved.steps) == 1
    assert result.files["report_html"].exists()


def test_interrupt_writes_partial_report(tmp_path, small_csv):
    def ctrl_c(messages):
        raise KeyboardInterrupt

    result, _ = run(tmp_path, small_csv, [CODE, ctrl_c])
    assert result.outcome.status == "interrupted"
    assert read_trajectory(result.files["trajectory"]).outcome.status == "interrupted"
    assert str(CUBE_SUM) in result.files["report_md"].read_text()


def test_input_file_is_copied_not_touched(tmp_path, small_csv):
    before = small_csv.read_bytes()
    clobber = "```python\nopen('shop.csv', 'w').write('gone')\nimport os; os.remove('shop.csv')\n```"
    result, _ = run(tmp_path, small_csv, [clobber, REPORT])
    assert small_csv.read_bytes() == before
    assert result.trajectory.header.files[0].sha256 == __import__("hashlib").sha256(before).hexdigest()


def test_code_inside_the_report_is_not_run(tmp_path, small_csv):
    reply = f"## Final Report\nexample:\n```python\nprint(2)\n```\n@x[{CUBE_SUM}]"
    result, _ = run(tmp_path, small_csv, [CODE, reply])
    assert result.outcome.status == "report" and result.outcome.turns == 2
    assert result.trajectory.steps[1].execution is None


def test_report_before_any_code_is_sent_back(tmp_path, small_csv):
    made_up = "## Final Report\n- Sales are growing.\n@cube_sum[1]"
    result, backend = run(tmp_path, small_csv, [made_up, CODE, REPORT], question=QUESTION)
    assert [s.step_kind for s in result.trajectory.steps] == ["nudge", "code", "report"]
    assert "not run any code" in backend.calls[1][-1].content
    assert result.outcome.answers == {"cube_sum": str(CUBE_SUM)}


def test_a_report_after_only_failed_cells_is_sent_back_as_such(tmp_path, small_csv):
    # Seen with tuned v8 (fair/what-predicts-affairs): every cell failed on a misspelt column,
    # and the nudge then claimed no code had run at all.
    failing = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\nprint(df['salez'].sum())\n```"
    made_up = "## Final Report\n- Sales are growing.\n@cube_sum[1]"
    result, backend = run(tmp_path, small_csv, [failing, made_up, CODE, REPORT], question=QUESTION)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "nudge", "code", "report"]
    note = backend.calls[2][-1].content
    assert "Every cell you have run so far failed" in note and "not run any code" not in note
    assert result.outcome.status == "report" and result.outcome.answers == {"cube_sum": str(CUBE_SUM)}


def test_two_made_up_reports_end_the_run(tmp_path, small_csv):
    made_up = "## Final Report\n- Sales are growing."
    result, _ = run(tmp_path, small_csv, [made_up, made_up, CODE])
    assert result.outcome.status == "no_code" and result.outcome.turns == 2


def test_a_report_with_answers_no_output_shows_goes_back(tmp_path, small_csv):
    miscopied = "## Final Report\n- The cube sum is large.\n@cube_sum[41.5]"
    result, backend = run(tmp_path, small_csv, [CODE, miscopied, CODE, REPORT], question=QUESTION)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "code", "report"]
    note = backend.calls[2][-1].content
    assert "@cube_sum[41.5]" in note and "Compute them from the data" in note
    assert result.outcome.status == "report" and result.outcome.answers == {"cube_sum": str(CUBE_SUM)}


def test_the_same_report_is_sent_back_once_then_it_stands(tmp_path, small_csv):
    miscopied = "## Final Report\n@cube_sum[41.5]"
    result, _ = run(tmp_path, small_csv, [CODE, miscopied, miscopied, CODE], question=QUESTION)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "report"]
    assert result.outcome.status == "report" and result.outcome.answers == {"cube_sum": "41.5"}
    # a changed report may go back once more (answer_checks=2), and never a third time
    reports = [f"## Final Report\n@cube_sum[{n}]" for n in (41.5, 42.5, 43.5)]
    result, _ = run(tmp_path / "changed", small_csv, [CODE, *reports, CODE], question=QUESTION)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "check", "report"]
    assert result.outcome.answers == {"cube_sum": "43.5"}
    result, _ = run(tmp_path / "one", small_csv, [CODE, *reports], question=QUESTION, answer_checks=1)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "report"]
    # never on the last turn: no turn would be left to answer it, and the run would end without a
    # report (seen with the tuned 0.5B: three runs ended max_turns on a second check on turn 12)
    result, _ = run(tmp_path / "last", small_csv, [CODE, *reports], question=QUESTION, max_turns=3)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "check", "report"]
    assert result.outcome.status == "report" and result.outcome.answers == {"cube_sum": "42.5"}


def test_a_report_that_drops_its_answers_after_the_check_goes_back_with_printed_values(tmp_path, small_csv):
    # Seen with the tuned 1.5B (economics, cigar): the cell printed "corr = -0.927", the report wrote
    # @corr[0.927]; sent back, the model printed the number it had typed in and sent the report
    # again with "Corr: 0.927" and no @corr at all, which then stood. Now a typed-in print is no
    # evidence, the note quotes the printed value, and the changed report goes back once more.
    question = "What is the negative cube sum? Report @neg[value]."
    cell = "```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\nneg = -(df.sales ** 3).sum()\nprint('neg =', neg)\n```"
    dropped_sign = f"## Final Report\n- Negative cube sum: @neg[{CUBE_SUM}]"
    typed = f"```python\nprint('neg =', round({CUBE_SUM}, 3))\n```"
    no_tags = f"## Final Report\n- Negative cube sum: {CUBE_SUM}"
    right = f"## Final Report\n- Negative cube sum: @neg[-{CUBE_SUM}]"
    backend = ScriptedBackend([cell, dropped_sign, typed, no_tags, right])
    result = analyze([small_csv], question, tmp_path / "run", backend, RunConfig())
    kinds = [s.step_kind for s in result.trajectory.steps]
    assert kinds == ["code", "check", "code", "check", "report"]
    first, second = backend.calls[2][-1].content, backend.calls[4][-1].content
    assert f"@neg[{CUBE_SUM}]" in first and f"Your outputs printed: neg = -{CUBE_SUM}." in first
    assert "leaves out @neg[...]" in second and f"neg = -{CUBE_SUM}" in second  # not the typed-in value
    assert result.outcome.answers == {"neg": f"-{CUBE_SUM}"}


def test_captions_are_not_checked_as_answers_on_a_closed_question(tmp_path, small_csv):
    # Seen with the tuned 1.5B (diabetes/age-groups): "@figure_001[Figure with 1 axes; ...]" was sent
    # back as an unsupported answer, and the model rewrote its report without any @name form.
    report = REPORT + "\n@figure_001[a bar chart of sales, by region]"
    result, _ = run(tmp_path, small_csv, [CODE, report], question=QUESTION)
    assert [s.step_kind for s in result.trajectory.steps] == ["code", "report"]
    assert result.outcome.answers["cube_sum"] == str(CUBE_SUM)


class GreedyRepeater:
    """Greedy: the failing cell every time, as a small model resends it. Sampled: the working cell."""

    name, model_id = "repeater", "repeater"

    def __init__(self):
        self.configs = []

    def generate(self, messages, config):
        from agent.backends.base import Reply

        self.configs.append(config)
        if any(m.role == "user" and f"cube sum {CUBE_SUM}" in m.content for m in messages):
            text = REPORT  # the working cell has run
        elif config.temperature > 0 and len(self.configs) > 3:
            text = CODE  # only the second sampled draw finds the fix
        else:
            text = "```python\n# the sum of cubes\nprint(df_missing.sales.sum())\n```"
        return Reply(text=text, prompt_tokens=10, completion_tokens=5, seconds=0.5)


def test_a_resent_failed_cell_is_redrawn_with_seeded_sampling(tmp_path, small_csv):
    backend = GreedyRepeater()
    config = RunConfig(resample=2, resample_temperature=0.7)
    result = analyze([small_csv], "What is the cube sum of sales?", tmp_path / "run", backend, config)
    steps = result.trajectory.steps
    assert result.outcome.status == "report" and [s.step_kind for s in steps] == ["code", "code", "report"]
    # turn 2: greedy resent the failed cell (only a comment differs in the redraws' check), so two
    # more replies were drawn at the resample temperature, seeded by turn and draw; the second ran
    assert [(c.temperature, c.seed) for c in backend.configs] == [
        (0.0, None),
        (0.0, None),
        (0.7, 21),
        (0.7, 22),
        (0.0, None),
    ]
    assert [s.redrawn for s in steps] == [0, 2, 0]
    assert "cube sum" in steps[1].observation and steps[1].execution.ok
    assert steps[1].completion_tokens == 15 and steps[1].generation_seconds == 1.5  # all three draws
    assert read_trajectory(result.files["trajectory"]).steps[1].redrawn == 2


def test_without_resampling_the_resent_cell_runs_again(tmp_path, small_csv):
    backend = GreedyRepeater()
    config = RunConfig(resample=0, repeat_error_limit=2)
    result = analyze([small_csv], "What is the cube sum of sales?", tmp_path / "run", backend, config)
    assert result.outcome.status == "repeated_error" and result.outcome.errors == 2
    assert all(c.temperature == 0.0 for c in backend.configs)


def test_cell_key_ignores_comments_and_layout_only():
    from agent.loop import cell_key

    cell = "x = df['a'].mean()\nprint(x)"
    assert cell_key("# the mean\nx = df['a'].mean()   # a\n\nprint( x )\n") == cell_key(cell)
    assert cell_key("x = df['b'].mean()\nprint(x)") != cell_key(cell)
    assert cell_key("print(x\n") == "print(x"  # not Python: compared as written, less the ends


class ScriptedBySampling:
    """Greedy replies and sampled replies from two queues, to see which the loop asked for."""

    name, model_id = "two-queues", "two-queues"

    def __init__(self, greedy, sampled):
        self.greedy, self.sampled = list(greedy), list(sampled)

    def generate(self, messages, config):
        from agent.backends.base import Reply

        text = (self.sampled if config.temperature > 0 else self.greedy).pop(0)
        return Reply(text=text, prompt_tokens=1, completion_tokens=1)


def cell(*lines):
    return "```python\n" + "\n".join(lines) + "\n```"


def test_failing_lines_cut_out_of_their_cell_count_as_a_resend(tmp_path, small_csv):
    load = ["import pandas as pd", "df = pd.read_csv('shop.csv')"]
    means, bad = "means = df.mean(numeric_only=True)", "print(means.loc['nope', 'sales'])"
    greedy = [cell(*load, means, bad), cell("# again", means, bad), "## Final Report\n- Sales are listed."]
    backend = ScriptedBySampling(greedy, sampled=[CODE])
    result = analyze([small_csv], "List the sales", tmp_path / "run", backend, RunConfig(resample=1))
    steps = result.trajectory.steps
    assert not steps[0].execution.ok and steps[1].redrawn == 1 and steps[1].execution.ok
    assert "cube sum" in steps[1].execution.stdout


def test_a_fix_above_the_failing_line_is_run_not_redrawn(tmp_path, small_csv):
    greedy = [cell("print(total)"), cell("total = 5", "print(total)"), "## Final Report\n- The total is 5."]
    backend = ScriptedBySampling(greedy, sampled=[])
    result = analyze([small_csv], "What is the total?", tmp_path / "run", backend, RunConfig(resample=2))
    steps = result.trajectory.steps
    assert [s.redrawn for s in steps] == [0, 0, 0] and steps[1].execution.stdout.strip() == "5"
    assert result.outcome.status == "report"


def test_failing_line_is_taken_from_the_cell_that_ran():
    from agent.loop import failing_line

    code = "x = 1\ny = f(x)\nprint(y)"
    traceback = "Traceback\n\n  Cell In[7], line 2\n    y = f(x)\n\n  Cell In[3], line 5, in f\n    return z\n\nNameError"
    assert failing_line(code, traceback) == "y = f(x)"
    assert failing_line(code, "  Cell In[7], line 9\n") is None and failing_line(code, "no frame") is None
