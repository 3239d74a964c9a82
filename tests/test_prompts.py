from agent import prompts


def test_extract_code_joins_blocks_and_handles_unclosed_fence():
    text = "Look:\n```python\nx = 1\n```\nthen\n```\nprint(x)\n```"
    assert prompts.extract_code(text) == "x = 1\n\nprint(x)"
    assert prompts.extract_code("```python\nprint(2)\n") == "print(2)"
    assert prompts.extract_code("no code here") is None
    assert prompts.extract_code("```python\n\n```") is None


def test_extract_report_and_answers():
    text = "Done.\n## Final Report\n- mean is 3\n@mean[3.25] and @top_region[West]\n@mean[3.5]"
    report = prompts.extract_report(text)
    assert report.startswith("## Final Report")
    assert prompts.parse_answers(report) == {"mean": "3.5", "top_region": "West"}
    assert prompts.extract_report("the final report will come later") is None
    assert prompts.extract_report("### FINAL REPORT:\nx") is not None


def test_observation_message_warns_near_the_end():
    assert "soon" not in prompts.observation_message("1", 2, 30)
    assert "Final Report" in prompts.observation_message("1", 28, 30)


def test_close_fence_restores_what_the_stop_string_cut():
    cut = "Let me look.\n```python\nprint(1)"
    assert prompts.close_fence(cut) == cut + "\n```"
    assert prompts.extract_code(prompts.close_fence(cut)) == "print(1)"
    whole = "```python\nprint(1)\n```"
    assert prompts.close_fence(whole) == whole


def test_answers_are_checked_against_what_was_printed():
    outputs = ["mean_hwy = 28.29787234042553\nvehicle_class = compact", "r = -0.7377\ntotal 12051.0"]
    supported = "@vehicle_class[compact] @mean_hwy[28.30] @mean_hwy[28.3] @r[-0.738] @total[12,051]"
    assert prompts.ungrounded_answers(supported, outputs) == []
    made_up = "@mean_hwy[28.39] @vehicle_class[suv] @r[0.738] @x[...] @y[value] @total[12052]"
    assert prompts.ungrounded_answers(made_up, outputs) == [
        "@mean_hwy[28.39]",
        "@vehicle_class[suv]",
        "@r[0.738]",
        "@x[...]",
        "@y[value]",
        "@total[12052]",
    ]
    assert prompts.ungrounded_answers("no answers here", outputs) == []


def test_plain_report_turns_unasked_answers_into_text():
    report = "## Final Report\n- mean: @mean[3.5]\n\n@name[3]\n* @top[West], @n[10]\nsee @x[1] and @y[2]"
    assert prompts.plain_report(report) == (
        "## Final Report\n- mean: 3.5\n\n- top: West\n- n: 10\nsee 1 and 2"
    )
    assert prompts.plain_report("## Final Report\n- no answers") == "## Final Report\n- no answers"
