"""Materialize suite datasets as CSV files in a cache and compute every task's reference answers.

Layout: ``<cache>/<dataset>/<csv>`` and ``<cache>/<dataset>/meta.json`` (source, licence, shape,
sha256, and per task the expected answers and the facts an open report must mention).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from agent.records import file_sha256, now_iso
from eval_datasets.schema import DatasetSpec, Source, Task
from eval_datasets.sources import load_frame


class DatasetMeta(BaseModel):
    """What ``prepare`` recorded about one dataset."""

    name: str
    csv: str
    split: str
    source: Source
    licence: str
    description: str
    rows: int
    columns: int
    sha256: str
    spec_sha256: str = Field("", description="hash of the task file content the answers were computed from")
    prepared_at: str = Field(default_factory=now_iso)
    expected: dict[str, dict[str, float | str]] = Field(
        default_factory=dict, description="task id -> answers"
    )
    must_mention: dict[str, list[str]] = Field(default_factory=dict, description="open task id -> facts")


class PreparedTask(BaseModel):
    """A task ready to run: the CSV it reads, the values it expects, the facts it must mention."""

    task: Task
    split: str
    csv_path: Path
    expected: dict[str, float | str] = Field(default_factory=dict)
    must_mention: list[str] = Field(default_factory=list)


class ReferenceCodeError(RuntimeError):
    """Reference code failed: the task file is wrong, not the agent."""


def spec_digest(spec: DatasetSpec) -> str:
    """Changes whenever the task file changes, so stale reference answers are recomputed."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def default_cache() -> Path:
    """``$ANALYST_CACHE/datasets``, else ``~/.cache/analyst/datasets``."""
    root = os.environ.get("ANALYST_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "analyst"
    return base / "datasets"


def run_references(jobs: list[dict]) -> list[dict]:
    """Run reference snippets in one child process (see ``refrun``)."""
    if not jobs:
        return []
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "eval_datasets.refrun"],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    if done.returncode != 0:
        raise ReferenceCodeError(f"reference runner failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def reference_job(task: Task, folder: Path) -> dict:
    """The runner's job for one task: its code, run in ``folder``; open tasks assign ``facts``."""
    names = [a.name for a in task.answers] if task.kind == "closed" else ["facts"]
    return {"folder": str(folder), "code": task.reference_code, "names": names}


def reference_jobs(spec: DatasetSpec, folder: Path) -> list[tuple[Task, dict]]:
    """One job per task that has reference code."""
    return [(task, reference_job(task, folder)) for task in spec.tasks if task.reference_code.strip()]


def compute_references(spec: DatasetSpec, folder: Path) -> tuple[dict, dict]:
    """Expected answers of closed tasks and facts of open tasks, computed from the CSV in ``folder``."""
    pairs = reference_jobs(spec, folder)
    return check_references(spec, pairs, run_references([job for _, job in pairs]))


def check_references(
    spec: DatasetSpec, pairs: list[tuple[Task, dict]], outputs: list[dict]
) -> tuple[dict, dict]:
    """Sort runner outputs into answers and facts, refusing failures and values of the wrong kind."""
    expected: dict[str, dict[str, float | str]] = {}
    facts: dict[str, list[str]] = {t.id: list(t.must_mention) for t in spec.tasks if t.kind == "open"}
    for (task, _), output in zip(pairs, outputs, strict=True):
        if "error" in output:
            raise ReferenceCodeError(f"{task.id}: reference code failed:\n{output['error']}")
        values = output["values"]
        if task.kind == "open":
            facts[task.id] = list(task.must_mention) + values["facts"]
            continue
        for answer in task.answers:
            if (answer.kind == "text") != isinstance(values[answer.name], str):
                raise ReferenceCodeError(
                    f"{task.id}: {answer.name} should be {answer.kind}: {values[answer.name]!r}"
                )
        expected[task.id] = values
    return expected, facts


def materialize(spec: DatasetSpec, cache: Path, *, force: bool = False) -> Path:
    """Write the dataset's CSV into the cache unless it is already there."""
    folder = cache / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / spec.csv
    if force or not csv_path.exists():
        frame = load_frame(spec.source)
        partial = csv_path.with_suffix(".csv.part")
        frame.to_csv(partial, index=False)
        partial.replace(csv_path)  # a crash never leaves a truncated CSV under the real name
    return csv_path


def prepare_datasets(specs: list[DatasetSpec], cache: Path, *, force: bool = False) -> list[DatasetMeta]:
    """Write the CSVs (once) and recompute every reference answer, all snippets in one child process."""
    import pandas as pd

    csv_paths = [materialize(spec, cache, force=force) for spec in specs]
    pairs = [reference_jobs(spec, path.parent) for spec, path in zip(specs, csv_paths, strict=True)]
    outputs = run_references([job for group in pairs for _, job in group])
    metas = []
    for spec, csv_path, group in zip(specs, csv_paths, pairs, strict=True):
        mine, outputs = outputs[: len(group)], outputs[len(group) :]
        expected, facts = check_references(spec, group, mine)
        frame = pd.read_csv(csv_path)
        meta = DatasetMeta(
            name=spec.name,
            csv=spec.csv,
            split=spec.split,
            source=spec.source,
            licence=spec.licence,
            description=spec.description,
            rows=len(frame),
            columns=frame.shape[1],
            sha256=file_sha256(csv_path),
            spec_sha256=spec_digest(spec),
            expected=expected,
            must_mention=facts,
        )
        (csv_path.parent / "meta.json").write_text(meta.model_dump_json(indent=2), encoding="utf-8")
        metas.append(meta)
    return metas


def prepare_dataset(spec: DatasetSpec, cache: Path, *, force: bool = False) -> DatasetMeta:
    """Write one dataset's CSV (once) and recompute its reference answers."""
    return prepare_datasets([spec], cache, force=force)[0]


def is_fresh(spec: DatasetSpec, cache: Path) -> bool:
    """True when the cache holds this dataset with answers computed from the current task file."""
    meta = load_meta(spec, cache)
    return meta is not None and meta.spec_sha256 == spec_digest(spec)


def load_meta(spec: DatasetSpec, cache: Path) -> DatasetMeta | None:
    """The recorded meta of a prepared dataset, or None if it was never prepared."""
    path = cache / spec.name / "meta.json"
    if not path.exists() or not (cache / spec.name / spec.csv).exists():
        return None
    return DatasetMeta.model_validate_json(path.read_text(encoding="utf-8"))


def prepared_tasks(spec: DatasetSpec, cache: Path, *, prepare_missing: bool = True) -> list[PreparedTask]:
    """The tasks of one dataset with their expected values, preparing the dataset if needed."""
    meta = load_meta(spec, cache)
    if meta is None or meta.spec_sha256 != spec_digest(spec):
        if not prepare_missing:
            raise FileNotFoundError(f"dataset {spec.name} is not prepared in {cache}")
        meta = prepare_dataset(spec, cache)
    csv_path = cache / spec.name / spec.csv
    return [
        PreparedTask(
            task=task,
            split=spec.split,
            csv_path=csv_path,
            expected=meta.expected.get(task.id, {}),
            must_mention=meta.must_mention.get(task.id, []),
        )
        for task in spec.tasks
    ]
