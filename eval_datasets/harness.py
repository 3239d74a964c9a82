"""Run the agent over suite tasks: a fresh sandbox per task, N workers, resumable, every run kept.

Output folder: ``results.jsonl`` (one line per finished task, flushed as it lands), ``runs/<task id>/``
(each run's trajectory, reports, notebook, figures), ``summary.json`` and ``summary.html``.
Re-running into the same folder skips tasks that already have a finished result; runs that ended
in a system fault or an interrupt are retried.
"""

from __future__ import annotations

import fnmatch
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from agent.backends.base import Backend
from agent.records import Trajectory, now_iso
from eval_datasets.prepare import PreparedTask, default_cache, is_fresh, prepare_datasets, prepared_tasks
from eval_datasets.schema import Task, load_suite
from eval_datasets.scoring import AnswerScore, chart_count, score_task

RETRIED_STATUSES = ("error", "interrupted")
RESULTS = "results.jsonl"

if TYPE_CHECKING:
    from sandbox.pool import KernelPool

Split = Literal["heldout", "train", "all"]


class TaskResult(BaseModel):
    """One line of results.jsonl: how one task's run ended and how it scored."""

    task_id: str
    dataset: str
    split: str
    kind: str
    status: str
    correct: bool
    partial: float
    answers: list[AnswerScore] = Field(default_factory=list)
    criteria: dict[str, bool] = Field(default_factory=dict)
    facts_missing: list[str] = Field(default_factory=list)
    turns: int = 0
    wall_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = Field(0, description="turns whose cell raised, timed out or lost its kernel")
    recovered: bool = Field(False, description="hit at least one error and still finished correct")
    wrap_up: bool = Field(False, description="the loop asked for the report because a cell kept failing")
    charts: int = 0
    model: str = ""
    backend: str = ""
    run_dir: str = ""
    detail: str = ""
    finished_at: str = Field(default_factory=now_iso)

    @property
    def finished(self) -> bool:
        return self.status not in RETRIED_STATUSES


@dataclass
class EvalConfig:
    """What to evaluate and under which limits."""

    out: Path = field(metadata={"help": "output folder (results.jsonl, runs/, summary.*)"})
    split: Split = field(default="heldout", metadata={"help": "heldout | train | all"})
    tasks: str = field(default="*", metadata={"help": "glob over task ids, e.g. 'mpg/*'"})
    limit: int | None = field(default=None, metadata={"help": "run at most this many tasks"})
    workers: int = field(default=1, metadata={"help": "tasks run in parallel, each with its own kernel"})
    cache: Path | None = field(default=None, metadata={"help": "prepared dataset cache"})
    max_turns: int | None = field(default=None, metadata={"help": "override every task's turn limit"})
    time_budget_s: float | None = field(default=None, metadata={"help": "override every task's time budget"})
    warm_kernels: bool = field(
        default=True,
        metadata={"help": "pre-start one kernel per worker (a fresh kernel per task either way)"},
    )


def interleave(groups: list[list[Task]]) -> list[Task]:
    """Round-robin over datasets, so ``--limit K`` samples K different datasets before repeating one."""
    ordered: list[Task] = []
    for index in range(max((len(g) for g in groups), default=0)):
        ordered += [group[index] for group in groups if index < len(group)]
    return ordered


def select_tasks(
    split: Split, pattern: str = "*", limit: int | None = None, cache: Path | None = None
) -> list[PreparedTask]:
    """Prepared tasks of a split matching a glob, interleaved by dataset; prepares only what it runs."""
    cache = cache or default_cache()
    specs = [s for s in load_suite() if split == "all" or s.split == split]
    chosen = interleave([[t for t in s.tasks if fnmatch.fnmatch(t.id, pattern)] for s in specs])
    chosen = chosen[:limit] if limit is not None else chosen
    needed = [s for s in specs if any(t.dataset == s.name for t in chosen)]
    stale = [s for s in needed if not is_fresh(s, cache)]
    if stale:
        prepare_datasets(stale, cache)  # one reference-runner process for all of them
    prepared = {p.task.id: p for s in needed for p in prepared_tasks(s, cache)}
    return [prepared[t.id] for t in chosen]


def task_question(prepared: PreparedTask) -> str:
    """The question the agent gets: the task's own words plus the exact answer lines to write."""
    task = prepared.task
    if task.kind == "open":
        return task.question
    # One line of text: the runner folds the question's whitespace, so a list would not survive.
    hints = "; ".join(answer.format_hint() for answer in task.answers)
    return f"{task.question} In your final report, write each answer as shown, with its value in place of the dots: {hints}."


def run_config_for(prepared: PreparedTask, base: Any, config: EvalConfig) -> Any:
    """The run limits of one task: CLI overrides win over the task's own, which win over the defaults."""
    limits = prepared.task.limits
    max_turns = config.max_turns or limits.max_turns or base.max_turns
    budget = config.time_budget_s or limits.time_budget_s or base.time_budget_s
    return replace(base, max_turns=max_turns, time_budget_s=budget)


def run_dir_for(out: Path, task_id: str) -> Path:
    return out / "runs" / task_id.replace("/", "__")


def result_from(prepared: PreparedTask, trajectory: Trajectory, run_dir: Path) -> TaskResult:
    """Score a finished trajectory into a results.jsonl line."""
    outcome = trajectory.outcome
    score = score_task(prepared, trajectory)
    status = outcome.status if outcome is not None else "error"
    errors = outcome.errors if outcome is not None else 0
    return TaskResult(
        task_id=prepared.task.id,
        dataset=prepared.task.dataset,
        split=prepared.split,
        kind=prepared.task.kind,
        status=status,
        correct=score.correct,
        partial=score.partial,
        answers=score.answers,
        criteria=score.criteria,
        facts_missing=score.facts_missing,
        turns=outcome.turns if outcome else len(trajectory.steps),
        wall_seconds=outcome.wall_seconds if outcome else 0.0,
        prompt_tokens=outcome.prompt_tokens if outcome else 0,
        completion_tokens=outcome.completion_tokens if outcome else 0,
        errors=errors,
        recovered=errors > 0 and score.correct,
        wrap_up=outcome is not None and outcome.wrap_up_turn is not None,
        charts=chart_count(trajectory),
        model=trajectory.header.model,
        backend=trajectory.header.backend,
        run_dir=str(run_dir),
        detail=outcome.detail if outcome else "",
    )


def run_task(
    prepared: PreparedTask, backend: Backend, out: Path, run_config: Any, pool: KernelPool | None = None
) -> TaskResult:
    """One task in a fresh run folder with its own kernel; a sandbox that cannot start is an error result."""
    from agent.preview import InputError
    from sandbox.kernel import SandboxError

    run_dir = run_dir_for(out, prepared.task.id)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a retried run starts clean: no stale trajectory or figures
    started = time.monotonic()
    try:
        result = _analyze(prepared, backend, run_dir, run_config, pool)
    except (InputError, SandboxError, OSError) as exc:
        return TaskResult(
            task_id=prepared.task.id,
            dataset=prepared.task.dataset,
            split=prepared.split,
            kind=prepared.task.kind,
            status="error",
            correct=False,
            partial=0.0,
            wall_seconds=time.monotonic() - started,
            run_dir=str(run_dir),
            detail=f"{type(exc).__name__}: {exc}",
        )
    return result_from(prepared, result.trajectory, run_dir)


def _analyze(
    prepared: PreparedTask, backend: Backend, run_dir: Path, run_config: Any, pool: KernelPool | None
):
    from agent.runner import analyze

    sandbox = pool.acquire(run_dir / "workspace", run_dir / "figures") if pool is not None else None
    try:
        return analyze(
            files=[prepared.csv_path],
            question=task_question(prepared),
            out_dir=run_dir,
            backend=backend,
            config=run_config,
            task_id=prepared.task.id,
            sandbox=sandbox,
        )
    finally:
        if pool is not None and sandbox is not None:
            pool.release(sandbox)  # closed in the background; never reused for another task


def read_results(out: Path) -> dict[str, TaskResult]:
    """The latest result per task in ``out/results.jsonl`` (a torn last line is ignored)."""
    path = out / RESULTS
    results: dict[str, TaskResult] = {}
    if not path.exists():
        return results
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            result = TaskResult.model_validate_json(line)
        except ValueError:
            continue  # a line cut short by a kill; its task simply runs again
        results[result.task_id] = result
    return results


class ResultLog:
    """Appends results to results.jsonl from several threads, one flushed line at a time."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self._handle = open(out / RESULTS, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, result: TaskResult) -> None:
        with self._lock:
            self._handle.write(result.model_dump_json() + "\n")
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()


BackendFactory = Callable[[], Backend]


class BackendSource:
    """Backends for workers: one per worker thread (models are not thread-safe), or a fresh one per task."""

    def __init__(self, factory: BackendFactory, *, per_task: bool = False, first: Backend | None = None):
        self._factory = factory
        self._per_task = per_task
        self._local = threading.local()
        self._lock = threading.Lock()
        # A backend built up front (to fail fast on a bad --model) goes to the first worker that asks.
        self._first = first

    def get(self) -> Backend:
        if self._per_task:
            return self._take_first() or self._factory()
        if getattr(self._local, "backend", None) is None:
            self._local.backend = self._take_first() or self._factory()
        return self._local.backend

    def _take_first(self) -> Backend | None:
        with self._lock:
            backend, self._first = self._first, None
        return backend


def other_models(out: Path, model_id: str) -> set[str]:
    """Models other than ``model_id`` whose results are already in ``out`` (resuming would mix them)."""
    return {r.model for r in read_results(out).values() if r.model and r.model != model_id}


def pending_tasks(tasks: list[PreparedTask], out: Path) -> list[PreparedTask]:
    """Tasks without a finished result in ``out`` (resume)."""
    done = {tid for tid, r in read_results(out).items() if r.finished}
    return [p for p in tasks if p.task.id not in done]


def run_eval(
    tasks: list[PreparedTask],
    config: EvalConfig,
    backends: BackendSource,
    base_run_config: Any,
    on_result: Callable[[TaskResult], None] | None = None,
) -> list[TaskResult]:
    """Run every pending task and return all results of ``tasks`` (old and new)."""
    todo = pending_tasks(tasks, config.out)
    log = ResultLog(config.out)
    pool = _start_pool(config, len(todo))
    try:
        for result in _execute(todo, config, backends, base_run_config, pool):
            log.write(result)
            if on_result is not None:
                on_result(result)
            if result.status == "interrupted":
                break  # Ctrl-C: stop scheduling; the interrupted task reruns on resume
    finally:
        log.close()
        if pool is not None:
            pool.close()
    latest = read_results(config.out)
    return [latest[p.task.id] for p in tasks if p.task.id in latest]


def _start_pool(config: EvalConfig, pending: int) -> KernelPool | None:
    """Warm kernels, one per worker, so no task waits for a kernel start (none when nothing is pending)."""
    if not config.warm_kernels or pending == 0:
        return None
    from sandbox.pool import KernelPool

    return KernelPool(size=min(config.workers, pending))


def _execute(
    todo: list[PreparedTask], config: EvalConfig, backends: BackendSource, base: Any, pool: KernelPool | None
) -> Iterator[TaskResult]:
    def job(prepared: PreparedTask) -> TaskResult:
        return run_task(prepared, backends.get(), config.out, run_config_for(prepared, base, config), pool)

    if config.workers <= 1:
        # In the main thread, so Ctrl-C reaches the run and it records itself as interrupted.
        for prepared in todo:
            yield job(prepared)
        return
    with ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="eval") as executor:
        queue = iter(todo)
        running: set[Future[TaskResult]] = set()
        try:
            while True:
                while len(running) < config.workers and (prepared := next(queue, None)) is not None:
                    running.add(executor.submit(job, prepared))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in running:
                future.cancel()
