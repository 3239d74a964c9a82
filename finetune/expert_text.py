"""The expert teacher's prose: several phrasings per move, picked by its seeded RNG."""

from __future__ import annotations

import random

PHRASES: dict[str, tuple[str, ...]] = {
    "inspect": (
        "Let me load {file} and check its size, the missing values and the columns the question is about.",
        "First a look at the data: shape, gaps, and a summary of the relevant columns.",
        "I'll start by reading {file} and getting a feel for the columns involved.",
        "Before computing anything, I want to see what {file} holds.",
    ),
    "case_mistake": (
        "{rows_note}Let me look more closely at {wrong}.",
        "{rows_note}Next, the distribution of {wrong}.",
        "{rows_note}I want the summary statistics of {wrong} on its own.",
    ),
    "case_fix": (
        "KeyError: the column is spelled `{right}`, not `{wrong}` - column names are case-sensitive. Again with the right name.",
        "That failed because the column is called `{right}` in this file. Fixing the name.",
        "I got the capitalisation wrong; the preview lists it as `{right}`.",
    ),
    "name_fix": (
        "There is no `{wrong}` column; the hint under the error lists the real ones, and the one I want is `{right}`.",
        "KeyError: I guessed the name from the question. The file calls it `{right}`.",
        "Wrong column name: the hint suggests `{right}`, which matches the preview. Again with that.",
    ),
    "dates_mistake": (
        "{rows_note}Let me see how the rows spread over the years of `{col}`.",
        "{rows_note}How many records fall in each year of `{col}`?",
    ),
    "dates_fix": (
        "`{col}` is still plain text, so the `.dt` accessor fails. I need `pd.to_datetime` first.",
        "The error says `{col}` is not a datetime column yet: it was read as strings. Parsing it, then the same count.",
        "Right, CSV files carry dates as text. Converting `{col}` before using `.dt`.",
    ),
    "clean_dates": (
        "{rows_note}`{col}` was read as text; I'll convert it to datetimes before going further.",
        "{rows_note}The dates in `{col}` need parsing before they are useful.",
    ),
    "missing": (
        "{rows_note}A few of the columns I need have gaps; how many rows are complete?",
        "{rows_note}Before computing, let me check how many rows have every value I need.",
    ),
    "compute": (
        "{rows_note}Now the computation itself. I print each result so the report can quote the output.",
        "{rows_note}The data looks usable. Computing the answer:",
        "{rows_note}Now I can answer the question directly.",
        "{rows_note}Next, the numbers the question asks for.",
    ),
    "compute_plot": (
        "{rows_note}Now the computation, and {words} to go with it.",
        "{rows_note}Computing the answer, then {words} as a visual check.",
    ),
    "typo_fix": (
        "NameError: I misspelt `{name}` as `{typo}`. The values are already computed; printing them again.",
        "Just a typo in the print (`{typo}` instead of `{name}`). The computation itself ran.",
        "The variable is `{name}`, not `{typo}`. Printing the results properly.",
    ),
    "api_fix": (
        "That call was wrong; the hint under the error shows the right form. The same computation, written that way:",
        "The error and its hint show what I misused. Fixing that line and running the computation again.",
        "I used that pandas call the wrong way. Following the hint:",
    ),
    "report_fix": (
        "Right: I wrote the report before computing {names}. Computing them now and printing each one:",
        "The report came too early; no output shows {names} yet. The computation first:",
        "I have not computed {names} yet. Doing that now, then the report again.",
    ),
    "plot": (
        "A chart to check the result visually: {words}.",
        "Let me draw {words}.",
        "The numbers are in. To see the pattern, {words}.",
    ),
    "plot_retry": ("The chart failed; a simpler one instead: {words}.",),
    "groups": (
        "{rows_note}How does {num} differ across {cat}?",
        "{rows_note}Let me compare the average {num} between the {cat} groups.",
    ),
    "correlations": (
        "Which numeric columns move together? The strongest correlations:",
        "Now the relationships between the numeric columns.",
    ),
    "report_intro": (
        "The analysis is complete.",
        "Here is what the data shows.",
        "I have everything I need.",
        "",
    ),
    "chart_line": (
        "Chart: {words} (saved with the report).",
        "The figure shows {words}.",
        "See {words} in the figures folder.",
    ),
}


def phrase(rng: random.Random, key: str, **values: object) -> str:
    """One phrasing of ``key`` with its blanks filled."""
    return rng.choice(PHRASES[key]).format(**values)
