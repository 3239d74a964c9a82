"""The built-in expert teacher: a programmatic analyst that needs no language model.

``ExpertBackend(task, seed)`` implements the Backend protocol. For one task it plans a short analysis
(inspect -> clean -> compute -> plot -> conclude), sometimes makes a realistic mistake (wrong column
case, a column named from the question's words, unparsed dates, a misspelt variable, a pandas call
misused, a report sent before the answers were computed) and fixes it once the error, or the loop's
answer check, comes back. It reads every observation: errors decide the next move, and the values
in the final report are the ones the kernel printed, never the task's stored answers. Its code runs
for real in the sandbox through ``analyze()``, so every observation in its trajectories is genuine.
"""

from __future__ import annotations

import ast
import builtins
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.backends.base import GenerationConfig, Reply
from agent.records import Message
from finetune import expert_code as code
from finetune.expert_data import (
    Column,
    DataView,
    error_name,
    format_number,
    grouping_columns,
    parse_preview,
    printed_values,
    relevant_columns,
)
from finetune.expert_open import OpenAnalysis
from finetune.expert_text import phrase

_SHAPE_TUPLE = re.compile(r"^\((\d+), (\d+)\)$", re.MULTILINE)
_SHAPE_WORDS = re.compile(r"^(\d+) rows, (\d+) columns$", re.MULTILINE)
_MISSING = re.compile(r"'([^']+)': (?:np\.\w+\()?(\d+)")
MISTAKE_RATE = 0.4  # share of samples that make (and fix) one mistake: enough to teach recovery


@dataclass
class Move:
    """One reply: prose with a code cell, or the final report when ``code`` is None."""

    kind: str
    prose: str
    code: str | None = None
    fix: Callable[[], Move] | None = None  # set on a planned mistake: the move that answers its error

    def text(self) -> str:
        if self.code is None:
            return self.prose
        return f"{self.prose}\n\n```python\n{self.code}\n```".lstrip()


class ExpertBackend(OpenAnalysis):
    """A scripted-by-rules analyst for one task; ``seed`` varies phrasing, charts and mistakes."""

    name = "expert"
    fixed_replies = True  # its rules decide the reply: the loop never redraws (agent/loop.py)

    def __init__(self, task: Any, seed: int = 0):
        self.task = task
        self.seed = seed
        self.model_id = "builtin-expert"
        self.rng = random.Random(f"{task.id}:{seed}")
        self.view: DataView | None = None
        self.cols: list[Column] = []
        self.queue: list[Callable[[], Move]] = []
        self.last: Move | None = None
        self.values: dict[str, str] = {}
        self.facts: dict[str, Any] = {}
        self.retried: set[str] = set()

    @property
    def closed(self) -> bool:
        return getattr(self.task, "kind", "closed") == "closed"

    @property
    def answer_names(self) -> list[str]:
        return [a.name for a in getattr(self.task, "answers", [])]

    @property
    def reference(self) -> str:
        return (getattr(self.task, "reference_code", "") or "").strip()

    def generate(self, messages: list[Message], config: GenerationConfig) -> Reply:
        """The next reply: the first call plans from the data preview, later ones read the output."""
        if self.view is None:
            self._plan(next(m.content for m in messages if m.role == "user"))
        elif messages and messages[-1].role == "user":
            self._observe(messages[-1].content)
        move = self.queue.pop(0)() if self.queue else self._report()
        self.last = move
        text = move.text()
        prompt_chars = sum(len(m.content) for m in messages)
        return Reply(text=text, prompt_tokens=prompt_chars // 4, completion_tokens=len(text) // 4)

    # planning -------------------------------------------------------------------------------

    def _plan(self, task_message: str) -> None:
        self.view = parse_preview(task_message)
        self.cols = relevant_columns(self.view, self.reference, self.task.question)
        self.queue = [self._inspect]
        mistake = self._pick_mistake()
        first = self._mistake_moves(mistake)
        if self.closed:
            self.queue += self._closed_moves(mistake, first)
        else:
            self.queue += self._open_moves(mistake, first)
        self.queue.append(self._report)

    def _mistake_moves(self, mistake: str | None) -> list[Callable[[], Move]]:
        dates = [c for c in self.cols if c.date_like]
        if mistake == "dates":
            return [lambda: self._dates_mistake(dates[0])]
        if mistake == "case":
            return [self._case_mistake]
        if mistake == "name":
            return [self._name_mistake]
        return []

    def _pick_mistake(self) -> str | None:
        if self.rng.random() >= MISTAKE_RATE:
            return None
        options = []
        if any(code.wrong_case(c.name, self.view.names) for c in self.cols):
            options.append("case")
        if any(code.wrong_word(c.name, self.view.names) for c in self.cols):
            options.append("name")
        if any(c.date_like for c in self.cols):
            options.append("dates")
        if self.closed and self._typo() is not None:
            options.append("typo")
        if self.closed and code.api_slip(self.reference) is not None:
            options.append("api")
        if self.closed and self.answer_names:
            options.append("report")
        return self.rng.choice(options) if options else None

    def _closed_moves(self, mistake: str | None, first: list[Callable[[], Move]]) -> list[Callable[[], Move]]:
        moves = list(first)
        dates = [c for c in self.cols if c.date_like]
        gaps = [c for c in self.cols if c.missing]
        if not first:  # one detour per run is enough: a cleaning step only when no mistake is planned
            if dates and self.rng.random() < 0.6:
                moves.append(lambda: self._clean_dates(dates[0]))
            elif gaps and self.rng.random() < 0.5:
                moves.append(lambda: self._missing(gaps))
        if mistake == "api":
            return [*moves, self._api_slip, self._plot]
        if mistake == "report":
            return [*moves, self._early_report, lambda: self._compute(checked=True), self._plot]
        if mistake != "typo" and self.rng.random() < 0.3:
            return [*moves, self._compute_and_plot]
        return [*moves, lambda: self._compute(typo=mistake == "typo"), self._plot]

    def _typo(self) -> tuple[str, str] | None:
        """An answer variable and a misspelling of it that the reference code does not define."""
        try:
            names = {n.id for n in ast.walk(ast.parse(self.reference)) if isinstance(n, ast.Name)}
        except SyntaxError:
            return None
        taken = names | set(dir(builtins)) | {"df", "pd", "plt", "np"}
        for name in self.answer_names:
            typo = code.misspell(name, random.Random(f"{self.task.id}:{self.seed}:typo"), taken)
            if name in names and typo:
                return name, typo
        return None

    # reading observations -----------------------------------------------------------------------

    def _observe(self, observation: str) -> None:
        error = error_name(observation)
        self.values.update(printed_values(observation, self.answer_names))
        self._note(observation)
        last = self.last
        if last is not None and last.fix is not None:
            if error:  # the planned mistake happened: fix it next
                self.queue.insert(0, last.fix)
            return
        if error and last is not None:
            self._recover(last)

    def _note(self, observation: str) -> None:
        """Keep the facts a report can quote: size, gaps, group means, correlations."""
        shape = _SHAPE_TUPLE.search(observation) or _SHAPE_WORDS.search(observation)
        if shape and "rows" not in self.facts:
            self.facts["rows"], self.facts["ncols"] = int(shape.group(1)), int(shape.group(2))
            line = next((x for x in observation.splitlines() if x.startswith("missing values:")), "")
            self.facts["missing"] = [(n, int(k)) for n, k in _MISSING.findall(line)]
            counts = next((x for x in observation.splitlines() if x.startswith("distinct values:")), "")
            self.facts["distinct"] = {n: int(k) for n, k in _MISSING.findall(counts)}
            self.facts["rows_note"] = self._rows_sentence()
        if not self.closed:
            self._note_open(observation)

    def _rows_sentence(self) -> str:
        """What the inspection showed, in one of several wordings, or nothing at all (a third of the
        runs): a single fixed sentence here was copied by the tuned model, numbers made up included."""
        if self.rng.random() < 0.35:
            return ""
        rows, ncols, gaps = self.facts["rows"], self.facts["ncols"], self.facts["missing"][:3]
        counted = ", ".join(f"{name} ({count})" for name, count in gaps)
        missing = ", ".join(f"{name} has {count} missing" for name, count in gaps)
        names = ", ".join(name for name, _ in gaps)
        wordings = [
            f"The file has {rows} rows and {ncols} columns"
            + (f"; missing values in {counted}" if gaps else ""),
            f"{rows} rows loaded" + (f"; {missing}" if gaps else ", and nothing is missing"),
            "The columns look as expected" + (f", with gaps in {names}" if gaps else ""),
        ]
        return self.rng.choice(wordings) + ". "

    def _rows_note(self) -> str:
        """The size sentence, said once, in the reply right after the inspection."""
        return self.facts.pop("rows_note", "")

    def _recover(self, failed: Move) -> None:
        """An unplanned error: rerun the task's own code plainly, or fall back to a simpler chart."""
        if failed.kind.startswith("compute") and "compute" not in self.retried:
            self.retried.add("compute")
            self.queue.insert(0, self._compute_plain)
        elif failed.kind == "plot" and "plot" not in self.retried:
            self.retried.add("plot")
            self.queue.insert(0, self._plot_simple)

    # moves ------------------------------------------------------------------------------------

    def _inspect(self) -> Move:
        prose = phrase(self.rng, "inspect", file=self.view.file)
        if self.closed:
            return Move("inspect", prose, code.inspect_code(self.view, self.cols, self.rng))
        # An open question: the target's spread, and how many distinct values each column has, to
        # choose what to group by from what the kernel says rather than from guesses.
        target = self._target()
        cols = [target] if target is not None else [c for c in self.cols if c.numeric]
        return Move("inspect", prose, code.inspect_code(self.view, cols, self.rng, distinct=True))

    def _case_mistake(self) -> Move:
        return self._column_mistake("case", code.wrong_case)

    def _name_mistake(self) -> Move:
        """A column named from the question's words; the loop's hint lists the real columns."""
        return self._column_mistake("name", code.wrong_word)

    def _column_mistake(self, kind: str, guess: Callable[[str, list[str]], str | None]) -> Move:
        """A look at a column under a wrong name (``guess``), then under its own once the KeyError
        comes back; ``kind`` picks the fix's wording."""
        col = next(c for c in self.cols if guess(c.name, self.view.names))
        wrong = guess(col.name, self.view.names) or col.name
        prose = phrase(self.rng, "case_mistake", rows_note=self._rows_note(), wrong=wrong)

        def fix() -> Move:
            return Move(
                f"{kind}_fix",
                phrase(self.rng, f"{kind}_fix", right=col.name, wrong=wrong),
                code.column_look(col.name, col.numeric),
            )

        return Move(f"{kind}_mistake", prose, code.column_look(wrong, col.numeric), fix=fix)

    def _dates_mistake(self, col: Column) -> Move:
        prose = phrase(self.rng, "dates_mistake", rows_note=self._rows_note(), col=col.name)

        def fix() -> Move:
            body = code.parse_dates(col.name) + "\n" + code.dates_look(col.name)
            return Move("dates_fix", phrase(self.rng, "dates_fix", col=col.name), body)

        return Move("dates_mistake", prose, code.dates_look(col.name), fix=fix)

    def _clean_dates(self, col: Column) -> Move:
        prose = phrase(self.rng, "clean_dates", rows_note=self._rows_note(), col=col.name)
        return Move("clean", prose, code.parse_dates(col.name))

    def _missing(self, gaps: list[Column]) -> Move:
        prose = phrase(self.rng, "missing", rows_note=self._rows_note())
        return Move("clean", prose, code.drop_missing_note(gaps))

    def _compute(self, typo: bool = False, checked: bool = False) -> Move:
        """The task's computation with each answer printed; ``checked``: the reply to the loop's answer
        check of an early report, ``typo``: with a misspelt variable in the prints."""
        body = code.comment_reference(self.reference, self.rng)
        slip = self._typo() if typo else None
        prints = code.answer_prints(self.task.answers, dict([slip]) if slip else None)
        if checked:
            names = ", ".join(f"`{name}`" for name in self.answer_names)
            prose = phrase(self.rng, "report_fix", names=names)
        else:
            prose = phrase(self.rng, "compute", rows_note=self._rows_note())
        move = Move("compute", prose, f"{body}\n\n{prints}")
        if slip is not None:
            name, wrong = slip
            move.fix = lambda: Move(
                "typo_fix",
                phrase(self.rng, "typo_fix", name=name, typo=wrong),
                code.answer_prints(self.task.answers),
            )
        return move

    def _api_slip(self) -> Move:
        """The computation with a call misused (``df.corr('medv')``, ``df['malignant']``), then the
        task's own code once the error and its hint come back."""
        wrong = code.api_slip(self.reference) or self.reference
        prints = code.answer_prints(self.task.answers)
        prose = phrase(self.rng, "compute", rows_note=self._rows_note())
        move = Move("api_mistake", prose, f"{code.comment_reference(wrong, self.rng)}\n\n{prints}")
        move.fix = lambda: Move(
            "api_fix",
            phrase(self.rng, "api_fix"),
            f"{code.comment_reference(self.reference, self.rng)}\n\n{prints}",
        )
        return move

    def _early_report(self) -> Move:
        """A report sent after the first look, before any answer was computed: it leaves the answers
        out or gives the first one a made-up value. The loop sends it back (an answer left out, or one
        that no output shows) and the computation follows; collect marks this reply ``"train":
        false``, so what is learnt is the reply to the check, as with an error's fix."""
        self._rows_note()  # the size sentence belongs to this reply, which is not trained on
        lines = ["## Final Report", ""]
        if "rows" in self.facts:
            lines.append("- Data: " + self._data_line())
        first = self.task.answers[0]
        if getattr(first, "kind", "number") == "number" and self.rng.random() < 0.5:
            decimals = getattr(first, "decimals", None)
            made_up = format_number(str(self.rng.uniform(1, 100)), 2 if decimals is None else decimals)
            lines.append(f"- {first.name.replace('_', ' ').capitalize()}: @{first.name}[{made_up}]")
        else:
            lines.append(f"- The {first.name.replace('_', ' ')} follows from the data above.")
        return Move("report_mistake", "\n".join(lines))

    def _compute_and_plot(self) -> Move:
        body = code.comment_reference(self.reference, self.rng)
        chart, words = self._closed_chart()
        prose = phrase(self.rng, "compute_plot", rows_note=self._rows_note(), words=words)
        return Move("compute_plot", prose, f"{body}\n\n{code.answer_prints(self.task.answers)}\n\n{chart}")

    def _compute_plain(self) -> Move:
        prose = "That did not run as written. Running the computation step by step, exactly as planned:"
        return Move("compute_retry", prose, f"{self.reference}\n\n{code.answer_prints(self.task.answers)}")

    def _plot(self) -> Move:
        if not self.closed:
            return self._open_plot()
        chart, words = self._closed_chart()
        return Move("plot", phrase(self.rng, "plot", words=words), chart)

    def _closed_chart(self) -> tuple[str, str]:
        """A chart of the columns the task's code uses (missing values, if that is the question)."""
        about_missing = "missing" in self.task.question.lower()
        groups = grouping_columns(self.reference)
        chart, words = code.plot_code(self.view, self.cols, groups, self.rng, about_missing)
        self.facts["chart"] = words
        return chart, words

    def _plot_simple(self) -> Move:
        numeric = [c for c in self.view.columns if c.numeric][:1] or self.view.columns[:1]
        chart, words = code.plot_code(self.view, numeric, [], self.rng)
        self.facts["chart"] = words
        return Move("plot_retry", phrase(self.rng, "plot_retry", words=words), chart)

    # the report -------------------------------------------------------------------------------

    def _report(self) -> Move:
        lines = ["## Final Report", ""]
        intro = phrase(self.rng, "report_intro")
        if intro:
            lines += [intro, ""]
        if "rows" in self.facts and (not self.closed or self.rng.random() < 0.5):
            lines.append("- Data: " + self._data_line())
        lines += self._answer_lines() if self.closed else self._finding_lines()
        if "chart" in self.facts:
            lines.append("- " + phrase(self.rng, "chart_line", words=self.facts["chart"]))
        return Move("report", "\n".join(lines))

    def _data_line(self) -> str:
        text = f"{self.facts['rows']} rows, {self.facts['ncols']} columns"
        gaps = self.facts.get("missing", [])
        if gaps:
            return text + "; missing values in " + ", ".join(f"{n} ({k})" for n, k in gaps[:3]) + "."
        return text + ", no missing values."

    def _answer_lines(self) -> list[str]:
        """Each answer as printed by the kernel, rounded as the task asks, in ``@name[value]`` form."""
        inline = self.rng.random() < 0.5
        lines, tail = [], []
        for answer in self.task.answers:
            raw = self.values.get(answer.name)
            if raw is None:
                lines.append(f"- I could not compute {answer.name.replace('_', ' ')}.")
                continue
            number = getattr(answer, "kind", "number") == "number"
            value = format_number(raw, getattr(answer, "decimals", None)) if number else raw.strip("'\" ")
            label = answer.name.replace("_", " ")
            unit = f" {answer.unit}" if getattr(answer, "unit", "") else ""
            if inline:
                lines.append(f"- {label.capitalize()}: @{answer.name}[{value}]{unit}")
            else:
                lines.append(
                    self.rng.choice(
                        [
                            f"- {label.capitalize()}: {value}{unit}.",
                            f"- `{answer.name}` came out as {value}{unit}.",
                            f"- The computed {label} is {value}{unit}.",
                        ]
                    )
                )
                tail.append(f"@{answer.name}[{value}]")
        return lines + ([""] + tail + [""] if tail else [])
