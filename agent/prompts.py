"""The protocol the model follows, and the parsers that read its replies.

A reply's ```python blocks are executed (all blocks of one reply as one cell). The run ends with a
reply holding a ``## Final Report`` heading and no code; closed-form answers inside it are written
``@name[value]``.
"""

from __future__ import annotations

import re

SYSTEM_PROMPT = """\
You are a data analyst working in a Jupyter notebook. You answer questions about data files by
writing Python code (pandas, matplotlib). The files are in the current folder.

Each reply of yours is either:
1. one ```python code block; I run it and send you the output, or
2. when you have seen enough output to answer: a report that starts with the line "## Final Report",
   with your findings as short bullet points using the numbers from the outputs.

Never write a report before you have run code and seen its output. Work in small steps and print the
numbers you need. If the code fails, read the error and fix it. For charts call plt.show(); they are
saved for you. Answers asked as @name[value] go in the report exactly in that form."""

NUDGE_NO_CODE = (
    "I found no ```python code block and no final report in your reply. "
    "Either write one ```python block to run, or finish with a reply that starts with '## Final Report'."
)

NUDGE_PREMATURE_REPORT = (
    "You have not run any code yet, so the report cannot be based on the data. "
    "First write one ```python block that loads the file and prints what you need."
)

NUDGE_REPORT_AFTER_ERRORS = (
    "Every cell you have run so far failed, so the report cannot be based on the data. "
    "First fix the last error: write one ```python block that runs and prints what you need."
)

NUDGE_REPEATED_KEY_ERROR = (
    "The same code failed again with the same error. Try a different approach: check the column names "
    "with df.columns, or simplify the step."
)

# Any other error: pointing at df.columns there sent small models into printing the columns again and
# again (an AssertionError from .loc on a grouped result, seen with tuned v3 on caschool).
NUDGE_REPEATED_ERROR = (
    "The same code failed again with the same error. Do not send it again: change the line the error "
    "points at, or get the answer a simpler way."
)

NOTE_SAME_CELL = (
    "(You ran this same cell on turn {turn} and got this same output. Running it again will not "
    "change it: use the output, do a different step, or write the final report.)"
)

WRAP_UP_STUCK = (
    "This cell has failed the same way several times; stop retrying it. Write the final report now, "
    "starting with '## Final Report', from the outputs you already have."
)

CHECK_ANSWERS = (
    "Check these answers before you finish: {answers}. They match no number or name in the outputs so "
    "far. Compute them from the data and print them (rounded as asked), then send the final report "
    "again with each answer written as @name[value]."
)

CHECK_LEFT_OUT = (
    "Your report leaves out {answers}, which the question asks for. Send the final report again with "
    "each answer written as @name[value], the value taken from the outputs (print it with code first "
    "if no output has it yet)."
)

CHECK_PRINTED = "Your outputs printed: {values}."

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_REPORT_HEADING = re.compile(r"^\s*#{1,6}\s*final\s+report\b.*$", re.IGNORECASE | re.MULTILINE)
_ANSWER = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)\[([^\[\]\n]*)\]")


CODE_STOP = "\n```\n"  # a closing fence: generation stops once the reply's code block is complete


def close_fence(text: str) -> str:
    """Put back the closing fence that the CODE_STOP stop string cut off."""
    return text + "\n```" if text.count("```") % 2 == 1 else text


def extract_code(text: str) -> str | None:
    """All code blocks of a reply joined into one cell; an unclosed fence runs to the end of the text."""
    blocks = [block.strip("\n") for block in _FENCE.findall(text)]
    blocks = [block for block in blocks if block.strip()]
    return "\n\n".join(blocks) if blocks else None


def extract_report(text: str) -> str | None:
    """The final report's body (from its heading on), or None when the reply is not a report."""
    match = _REPORT_HEADING.search(text)
    if match is None:
        return None
    return text[match.start() :].strip()


def parse_answers(text: str) -> dict[str, str]:
    """``@name[value]`` pairs in order; a later value for the same name wins."""
    return {name: value.strip() for name, value in _ANSWER.findall(text)}


def amend_report(report: str, answers_text: str) -> str:
    """``report`` with the ``@name[value]`` answers given in ``answers_text`` put in: an answer the
    report already writes takes the new value where it stands, the others are added at the end."""
    given = parse_answers(answers_text)
    amended = _ANSWER.sub(lambda m: f"@{m[1]}[{given[m[1]]}]" if m[1] in given else m[0], report)
    written = set(parse_answers(report))
    added = [f"@{name}[{value}]" for name, value in given.items() if name not in written]
    return "\n".join([amended.rstrip(), *added]).strip()


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def asked_answers(question: str) -> list[str]:
    """The answer names a question asks for as ``@name[...]``, in order, once each."""
    return list(dict.fromkeys(name for name, _ in _ANSWER.findall(question)))


# The system prompt's own example of the answer form; a model that copies it into a report on an open
# question has no answer to give.
PLACEHOLDER_NAMES = {"name"}
_ANSWER_LINE = re.compile(rf"^[ \t]*(?:[-*][ \t]*)?((?:{_ANSWER.pattern}[ \t,;]*)+)$", re.MULTILINE)


def plain_report(report: str) -> str:
    """A report for a question that asks for no ``@name[value]`` answers, with the answer form
    (copied from the system prompt by small models) turned into plain text.

    A line that is nothing but answers becomes one ``- name: value`` bullet each, and the prompt's
    own placeholder (``@name[3]``) is dropped; an answer inside a sentence becomes its value.
    """

    def bullets(match: re.Match[str]) -> str:
        pairs = _ANSWER.findall(match.group(1))
        kept = [f"- {name}: {value.strip()}" for name, value in pairs if name not in PLACEHOLDER_NAMES]
        return "\n".join(kept)

    text = _ANSWER_LINE.sub(bullets, report)
    text = _ANSWER.sub(lambda m: m.group(2).strip(), text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def left_out_answers(report: str, asked: list[str]) -> list[str]:
    """The asked-for answers a report does not write as ``@name[...]``, shown as ``@name[...]``."""
    written = parse_answers(report)
    return [f"@{name}[...]" for name in asked if name not in written]


def ungrounded_answers(report: str, outputs: list[str], asked: list[str] | None = None) -> list[str]:
    """The ``@name[value]`` answers of a report that nothing printed so far supports, as written;
    only those of ``asked`` when it names any (``@figure_001[...]`` is then a caption, not an answer).

    A number is supported when some printed number rounds to it at the precision it is written with
    (``28.30`` is supported by ``28.2979``, ``28.39`` is not); a name when it occurs in an output.
    Placeholders (``...``, ``value``) are never supported.
    """
    printed = "\n".join(outputs)
    numbers = [float(n) for n in _NUMBER.findall(printed)]
    missing = []
    for name, raw in _ANSWER.findall(report):
        if asked and name not in asked:
            continue
        value = raw.strip().strip("'\"`").rstrip("%").replace(",", "").strip()
        if not value.strip(". ") or value.lower() in ("value", "name", "code"):
            missing.append(f"@{name}[{raw.strip()}]")
            continue
        try:
            number = float(value)
        except ValueError:
            if value.lower() not in printed.lower():
                missing.append(f"@{name}[{raw.strip()}]")
            continue
        places = len(value.split(".", 1)[1]) if "." in value and "e" not in value.lower() else 0
        slack = 0.5 * 10.0**-places * (1 + 1e-6) + 1e-12
        if not any(abs(n - number) <= slack for n in numbers):
            missing.append(f"@{name}[{raw.strip()}]")
    return list(dict.fromkeys(missing))


def first_user_message(question: str, previews: list[str]) -> str:
    """The task: the question, then a compact preview of each data file."""
    files = "\n\n".join(previews)
    return (
        f"Task: {question.strip()}\n\nData files:\n\n{files}\n\n"
        "Start with one ```python block that loads the data and looks at it."
    )


def observation_message(observation: str, turn: int, max_turns: int) -> str:
    """The output of a cell as the next user message, with the turns left so the model can plan."""
    left = max_turns - turn
    hint = " Finish with '## Final Report' soon." if left <= 3 else ""
    return f"Output:\n```\n{observation}\n```\n(turn {turn}/{max_turns}){hint}"
