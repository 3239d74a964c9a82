"""The answer check: whether a final report's ``@name[value]`` answers rest on what the cells printed.

A small model writes a report whose answers no output shows (made up, mis-copied, the sign dropped
from ``corr = -0.927``), or leaves out answers the question asks for. The loop sends such a report
back with a note saying which answers and what the outputs printed under those names; see
``agent.loop`` for how often. Only cells that compute something count as evidence: a cell that
prints numbers typed into it (``print("corr =", round(0.47, 3))``, a small model's reply to the
check) shows nothing about the data.
"""

from __future__ import annotations

import ast
import re

from agent import prompts

# builtins a cell may call and still print only what was typed into it
_TYPING_BUILTINS = {"print", "round", "int", "float", "str", "abs"}


def typed_in(code: str) -> bool:
    """Whether a cell uses nothing but literals and the builtins above: no variable, no data."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Import | ast.ImportFrom | ast.Subscript):
            return False
        if isinstance(node, ast.Name) and node.id not in _TYPING_BUILTINS:
            return False
    return True


def printed_values(outputs: list[str], names: list[str]) -> dict[str, str]:
    """The value last printed on a line of its own as ``name = value`` (or ``name: value``), by name."""
    found: dict[str, str] = {}
    for name in names:
        line = re.compile(
            rf"^[ \t]*`?{re.escape(name)}`?[ \t]*[=:][ \t]*(\S[^\n]{{0,60}}?)[ \t]*$", re.MULTILINE
        )
        for output in outputs:
            for value in line.findall(output):
                found[name] = value
    return found


def answer_check(report: str, outputs: list[str], asked: list[str]) -> str | None:
    """The note that sends ``report`` back, or None when its answers stand: the asked answers it
    leaves out, the answers no output supports, and what the outputs printed under those names."""
    left_out = prompts.left_out_answers(report, asked)
    unsupported = prompts.ungrounded_answers(report, outputs, asked)
    if not (left_out or unsupported):
        return None
    notes = [prompts.CHECK_LEFT_OUT.format(answers=_listed(left_out))] if left_out else []
    if unsupported:
        notes.append(prompts.CHECK_ANSWERS.format(answers=_listed(unsupported)))
    names = list(prompts.parse_answers(" ".join(left_out + unsupported)))  # each name once, in order
    if printed := printed_values(outputs, names):
        notes.append(prompts.CHECK_PRINTED.format(values="; ".join(f"{n} = {v}" for n, v in printed.items())))
    return "\n".join(notes)


def _listed(answers: list[str]) -> str:
    return ", ".join(answers[:5]) + (f" and {len(answers) - 5} more" if len(answers) > 5 else "")
