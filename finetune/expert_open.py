"""How the expert teacher explores an open question: pick a target, a time axis and a grouping from
the preview and the inspection output, compute drivers, trends or group differences, chart the
strongest finding, and report the facts the kernel printed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetune import expert_code as code
from finetune.expert_data import Column, labelled_numbers
from finetune.expert_text import phrase

if TYPE_CHECKING:
    from finetune.expert import Move

# Words of a question and the column names they usually refer to: an analyst's domain knowledge.
TARGET_WORDS: list[tuple[str, tuple[str, ...]]] = [
    (r"fuel|mileage|mpg", ("mpg", "miles_per_gallon", "hwy", "cty")),
    (r"price|expensive|cost", ("price",)),
    (r"home value|house value", ("medv", "value")),
    (r"salar", ("salary",)),
    (r"\btip", ("tip",)),
    (r"score", ("testscr", "score")),
    (r"sleep", ("sleep_total",)),
    (r"ozone", ("ozone",)),
    (r"visit", ("mdvis",)),
    (r"rated|rating", ("rating", "imdb_rating")),
    (r"birth weight", ("bwt",)),
    (r"weather|temperature", ("temp",)),
]
TIME_NAMES = ("date", "time_hour", "datetime", "year", "yr", "trend")
TREND_QUESTION = re.compile(r"trend|over time|change|decade|cycle|episode|history", re.IGNORECASE)
SEASON_QUESTION = re.compile(r"season|over the year\b|month", re.IGNORECASE)
DRIVER_QUESTION = re.compile(r"determin|drive|explain|associated|matter|affect|makes|factor", re.IGNORECASE)
_TREND_LINE = re.compile(r"^(\S+): first (-?[\d.]+), last (-?[\d.]+), peak in (\S+)$", re.MULTILINE)
_SEASON_LINE = re.compile(
    r"^(\S+) by month: highest in month (\S+) \(([-\d.]+)\), lowest in month (\S+) \(([-\d.]+)\)",
    re.MULTILINE,
)
_GROUP_LINE = re.compile(r"^(\S+): (.+ = -?[\d.]+(?:e[-+]?\d+)?)$", re.MULTILINE)
_ID_LIKE = re.compile(r"(^id$|_id$|^id_|index|^unnamed|^name$|rownames|^model$|^title$)", re.IGNORECASE)


class OpenAnalysis:
    """Moves for open tasks; mixed into ``ExpertBackend``, whose state (view, facts, rng) it uses."""

    view: Any
    cols: list[Column]
    facts: dict[str, Any]
    rng: Any
    task: Any
    _rows_note: Callable[[], str]

    def _open_moves(self, mistake: str | None, first: list[Callable[[], Move]]) -> list[Callable[[], Move]]:
        question = self.task.question
        explore: list[Callable[[], Move]] = []
        if self._time_column() is not None and TREND_QUESTION.search(question):
            explore.append(self._trend)
        if self._target() is not None and (not explore or DRIVER_QUESTION.search(question)):
            explore.append(self._drivers)
        if self._month_column() is not None and SEASON_QUESTION.search(question):
            explore.append(self._season)
        else:
            explore.append(self._groups)
        explore = explore[: 3 if mistake is None else 2]  # three to six turns in all
        if mistake is None:
            return [*first, *explore, self._open_plot]
        return [*first, *explore[:-1], lambda: self._with_plot(explore[-1]())]

    def _with_plot(self, move: Move) -> Move:
        """An exploration cell with the chart appended (keeps runs with a mistake at six turns)."""
        chart = self._open_plot()
        move.code = f"{move.code}\n\n{chart.code}"
        move.prose += " " + phrase(self.rng, "plot", words=self.facts["chart"])
        return move

    # choosing columns ---------------------------------------------------------------------------

    def _target(self) -> Column | None:
        """The numeric column the question is about."""
        numeric = [c for c in self.view.columns if c.numeric]
        question = self.task.question.lower()
        for pattern, names in TARGET_WORDS:
            if re.search(pattern, question):
                for name in names:
                    found = [c for c in numeric if c.name.lower() == name]
                    if found:
                        return found[0]
        spoken = [c for c in self.cols if c.numeric and not _ID_LIKE.search(c.name)]
        return spoken[0] if spoken else None

    def _time_column(self) -> Column | None:
        for name in TIME_NAMES:
            found = [c for c in self.view.columns if c.name.lower() == name and (c.numeric or c.date_like)]
            if found:
                return found[0]
        return next((c for c in self.view.columns if c.date_like), None)

    def _month_column(self) -> tuple[Column, str] | None:
        month = next((c for c in self.view.columns if c.name.lower() == "month" and c.numeric), None)
        if month is not None:
            return month, "month"
        time = self._time_column()
        return (time, "month") if time is not None and time.date_like else None

    def _trend_columns(self) -> list[str]:
        target = self._target()
        if target is not None:
            return [target.name]
        time = self._time_column()
        names = [
            c.name
            for c in self.view.columns
            if c.numeric
            and c is not time
            and c.name.lower() not in ("quarter", "month", "day", "hour")
            and not _ID_LIKE.search(c.name)
        ]
        return names[:4]

    def _group_columns(self) -> list[Column]:
        """Columns with few distinct values (as the inspection printed), most relevant first."""
        distinct = self.facts.get("distinct", {})
        target = self._target()
        cats = [c for c in self.view.columns if 2 <= distinct.get(c.name, 0) <= (12 if c.text else 6)]
        cats = [c for c in cats if not c.date_like and c is not target]
        cats.sort(key=lambda c: (c not in self.cols, not c.text, distinct[c.name]))
        return cats[:3]

    # moves ---------------------------------------------------------------------------------------

    def _drivers(self) -> Move:
        from finetune.expert import Move

        target = self._target()
        assert target is not None
        self.facts["target"] = target.name
        prose = self._rows_note() + self.rng.choice(
            [
                f"Which numeric columns go together with {target.name}? Correlations, strongest first:",
                f"First, how strongly each numeric column is related to {target.name}.",
            ]
        )
        return Move("drivers", prose, code.drivers_summary(target.name))

    def _trend(self) -> Move:
        from finetune.expert import Move

        time = self._time_column()
        names = self._trend_columns()
        self.facts["trend_cols"], self.facts["time_col"] = names, time.name
        prose = self._rows_note() + self.rng.choice(
            [
                f"The data runs over time (`{time.name}`): yearly averages show the trend.",
                f"Let me average per year using `{time.name}` to see the long-term movement.",
            ]
        )
        return Move("trend", prose, code.trend_summary(time, names))

    def _season(self) -> Move:
        from finetune.expert import Move

        month, unit = self._month_column()
        target = self._target() or next(c for c in self.view.columns if c.numeric and c is not month)
        self.facts.setdefault("target", target.name)
        prose = self.rng.choice(
            [
                "And the pattern within the year, month by month:",
                f"Now the seasonal profile: mean {target.name} per month.",
            ]
        )
        return Move("season", prose, code.season_summary(month, unit, target.name))

    def _groups(self) -> Move:
        """Group means of the target, or, without a target, the measurements that separate the groups."""
        from finetune.expert import Move

        cats, target = self._group_columns(), self._target()
        nums = [c.name for c in self.view.columns if c.numeric and not _ID_LIKE.search(c.name)]
        nums = [n for n in nums if n not in {c.name for c in cats}]
        if not cats or not nums:
            prose = "There is no obvious grouping column, so a summary of the numeric columns instead."
            return Move("explore", self._rows_note() + prose, "print(df.describe().T.round(2).head(8))")
        if target is None:
            self.facts["group_cols"] = [self.view.column(nums[0]), cats[0]]
            self.facts["group_kind"] = ("profile", cats[0].name)
            prose = self._rows_note() + self.rng.choice(
                [
                    f"Which measurements separate the {cats[0].name} groups best? Group means, biggest spread first:",
                    f"Let me compare the {cats[0].name} groups on every numeric column.",
                ]
            )
            return Move("profile", prose, code.profile_summary(cats[0].name, nums[:12]))
        self.facts["group_cols"] = [target, cats[0]]
        self.facts["group_kind"] = ("target", target.name)
        names = ", ".join(c.name for c in cats)
        prose = phrase(self.rng, "groups", rows_note=self._rows_note(), num=target.name, cat=names)
        return Move("groups", prose, code.group_summary([c.name for c in cats], target.name))

    def _open_plot(self) -> Move:
        from finetune.expert import Move

        size = self.rng.choice(["(6, 4)", "(7, 4)"])
        drivers = self.facts.get("drivers", [])
        if drivers and "target" in self.facts:
            x, y = drivers[0][0], self.facts["target"]
            chart, words = code.scatter(x, y, size), f"a scatter plot of {y} against {x}"
        elif self.facts.get("trend_cols"):
            name = self.facts["trend_cols"][0]
            chart, words = code.yearly_line(name, size), f"a line chart of yearly mean {name}"
        else:
            cols = self.facts.get("group_cols") or self.cols
            chart, words = code.plot_code(self.view, cols, [], self.rng)
        self.facts["chart"] = words
        return Move("plot", phrase(self.rng, "plot", words=words), chart)

    # reading and reporting -----------------------------------------------------------------------

    def _note_open(self, observation: str) -> None:
        drivers = [(n, r) for n, r in labelled_numbers(observation, ": r = ") if " ~ " not in n]
        if drivers:
            self.facts["drivers"] = drivers
        trends = _TREND_LINE.findall(observation)
        if trends:
            self.facts["trends"] = trends
        season = _SEASON_LINE.search(observation)
        if season and season.group(2) != season.group(4):
            self.facts["season"] = season.groups()
        groups = [(label, _pairs(rest)) for label, rest in _GROUP_LINE.findall(observation)]
        if groups and all(pairs for _, pairs in groups):
            self.facts["group_lines"] = groups

    def _finding_lines(self) -> list[str]:
        lines = []
        drivers = self.facts.get("drivers", [])
        if drivers:
            target = self.facts.get("target", "the target")
            strongest = ", ".join(f"{n} (r = {r:.2f})" for n, r in drivers[:3])
            lines.append(f"- {target} is most strongly related to {strongest}.")
        for name, first, last, peak in self.facts.get("trends", [])[:4]:
            way = "rose" if float(last) > float(first) else "fell"
            when = self.facts.get("time_col", "time")
            lines.append(
                f"- {name} {way} from {first} to {last} over the period (yearly means by {when}; peak in {peak})."
            )
        if "season" in self.facts:
            name, high, high_v, low, low_v = self.facts["season"]
            lines.append(f"- {name} peaks in month {high} ({high_v}) and is lowest in month {low} ({low_v}).")
        kind, name = self.facts.get("group_kind", ("target", ""))
        for label, pairs in self.facts.get("group_lines", [])[:5]:
            listed = ", ".join(f"{g} {v}" for g, v in pairs)
            measure, by = (name, label) if kind == "target" else (label, name)
            lines.append(f"- Mean {measure} by {by}: {listed}.")
        caveats = ["These are associations in observational data, not proof of cause."]
        if "trends" in self.facts:
            caveats.append("Yearly means smooth out the variation within each year.")
        else:
            caveats += [
                "Averages ignore missing values; correlation describes association, not cause.",
                "Group sizes differ, so small groups deserve less weight.",
            ]
        lines.append("- " + self.rng.choice(caveats))
        return lines


def _pairs(text: str) -> list[tuple[str, str]]:
    """``g = 1.0; h = 2.0`` as pairs; empty when the text is not in that form."""
    pairs = [part.rpartition(" = ") for part in text.split("; ")]
    return [(g, v) for g, sep, v in pairs if sep]
