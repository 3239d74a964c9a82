"""Turn a teacher's runs over the train split into verified training data.

For every train task and sample, the teacher (the built-in expert or any model backend) runs a real
analysis through ``analyze()``. A run is kept only if it is verified: it finished with a report and,
for closed tasks, the eval scorer accepts every answer; open tasks need what the eval needs to pass
them: a report naming the task's must-mention facts, at least one chart and no error left
unrecovered. Kept runs are deduplicated and written as ``train.jsonl`` in the ``{"messages": [...]}``
form that trl, axolotl and ms-swift read unchanged, beside ``stats.json`` and every raw trajectory
under ``trajectories/``. Held-out tasks are refused, so they never reach training.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.records import Trajectory

TRAIN_SPLIT = "train"


class CollectError(ValueError):
    """A user-fixable problem with a collect request (wrong split, no matching task, busy output)."""


@dataclass
class CollectConfig:
    """What to collect and how."""

    out: Path = field(metadata={"help": "output folder: train.jsonl, stats.json, trajectories/"})
    split: str = field(default=TRAIN_SPLIT, metadata={"help": "only 'train': held-out tasks are refused"})
    backend: str = field(default="expert", metadata={"help": "expert, or a model backend kind"})
    model: str = field(default="default", metadata={"help": "model for a model backend"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible server URL"})
    samples: int = field(default=1, metadata={"help": "runs per task, each with its own seed"})
    workers: int = field(default=1, metadata={"help": "runs in parallel (one kernel each)"})
    tasks: str = field(default="*", metadata={"help": "glob on task ids, e.g. 'penguins/*'"})
    drills: int = field(
        default=0, metadata={"help": "generated questions added per dataset (finetune.drills)"}
    )
    wide: int = field(
        default=0,
        metadata={"help": "tables outside the suite (Rdatasets) drilled too, --drills questions each"},
    )
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of a model teacher"})
    max_turns: int = field(default=12, metadata={"help": "turn limit per run"})
    overwrite: bool = field(default=False, metadata={"help": "replace a dataset already in --out"})
    cache: Path | None = field(default=None, metadata={"help": "prepared datasets cache"})


@dataclass
class Sample:
    """One teacher run and the verdict on it."""

    task_id: str
    kind: str
    seed: int
    verdict: str  # "kept" or the reason it was dropped
    detail: str = ""
    turns: int = 0
    errors: int = 0
    checks: int = 0  # reports the loop sent back for an answer check
    trajectory_path: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    tokens: int = 0

    @property
    def kept(self) -> bool:
        return self.verdict == "kept"


# which tasks ------------------------------------------------------------------------------------


def select_tasks(config: CollectConfig) -> list[Any]:
    """The prepared train tasks matching ``config.tasks``; any other split is refused."""
    from eval_datasets.prepare import default_cache, prepared_tasks
    from eval_datasets.schema import load_suite

    if config.split != TRAIN_SPLIT:
        raise CollectError(
            f"collect reads only the train split (got {config.split!r}): "
            "held-out tasks must never become training data"
        )
    if config.wide and not config.drills:
        raise CollectError("--wide drills other tables: give --drills N questions per table too")
    specs = [spec for spec in load_suite() if spec.split == TRAIN_SPLIT]
    cache = config.cache or default_cache()
    chosen = []
    for spec in specs:
        if not _may_match(spec, config):
            continue  # nothing of this dataset can match: do not prepare it
        prepared = prepared_tasks(spec, cache)
        if config.drills and prepared:
            from finetune.drills import prepared_drills

            prepared += prepared_drills(spec, prepared[0].csv_path, config.drills)
        chosen += [p for p in prepared if fnmatch.fnmatch(p.task.id, config.tasks)]
    if config.wide:
        from finetune.wide import prepared_wide

        wide = prepared_wide(config.wide, config.drills, cache, load_suite())
        chosen += [p for p in wide if fnmatch.fnmatch(p.task.id, config.tasks)]
    if not chosen:
        raise CollectError(f"no train task matches {config.tasks!r}")
    return [assert_train(p) for p in chosen]


def _may_match(spec: Any, config: CollectConfig) -> bool:
    """Whether a task of ``spec``, or one of its drills (ids not known before they are made), matches."""
    if any(fnmatch.fnmatch(t.id, config.tasks) for t in spec.tasks):
        return True
    dataset, slash, _ = config.tasks.partition("/")
    return bool(config.drills) and (not slash or fnmatch.fnmatch(spec.name, dataset))


def assert_train(prepared: Any) -> Any:
    """Refuse a held-out task, whichever way it got here (a check, not an ``assert``: -O keeps it)."""
    if prepared.split != TRAIN_SPLIT:
        raise CollectError(f"{prepared.task.id} belongs to the {prepared.split} split and is never collected")
    return prepared


# verification ------------------------------------------------------------------------------------


def verify(prepared: Any, trajectory: Trajectory) -> tuple[str, str]:
    """``("kept", "")`` for a verified run, else the reason it is dropped and a detail."""
    from eval_datasets.scoring import score_open

    outcome = trajectory.outcome
    if outcome is None:
        return "no_report", "the run did not finish"
    if outcome.status == "error":
        return "system_error", outcome.detail
    if outcome.status != "report" or not (outcome.report or "").strip():
        return "no_report", outcome.status
    if outcome.wrap_up_turn is not None:
        # the same failing cell three times is not a conversation to learn from
        return "asked_for_report", f"the loop asked for the report on turn {outcome.wrap_up_turn}"
    if prepared.task.kind == "closed":
        return _verify_answers(prepared, outcome.answers)
    # The eval's own open criteria (the report is there by now), so kept means what the eval passes.
    score = score_open(prepared, trajectory)
    if not score.criteria["chart"]:
        return "no_chart", "an open task needs at least one chart"
    if not score.criteria["no_unrecovered_error"]:
        return "unrecovered_error", "the last cell failed"
    if score.facts_missing:
        # A model teacher's report can skip what the question is about (tuned v10 learnt that from
        # six such runs, and its held-out open reports then missed their facts too).
        return "facts_missing", "the report does not mention " + ", ".join(score.facts_missing)
    return "kept", ""


def _verify_answers(prepared: Any, answers: dict[str, str]) -> tuple[str, str]:
    """Every answer present and accepted by the eval scorer."""
    from eval_datasets.scoring import score_answers

    missing = [a.name for a in prepared.task.answers if a.name not in answers]
    if missing:
        return "missing_answer", ", ".join(missing)
    wrong = [s for s in score_answers(prepared.task, prepared.expected, answers) if not s.correct]
    if wrong:
        return "wrong_answer", "; ".join(f"{s.name}: got {s.got!r}, expected {s.expected!r}" for s in wrong)
    return "kept", ""


# running ------------------------------------------------------------------------------------------


TeacherFactory = Callable[[Any, int], Any]


def make_teacher(config: CollectConfig) -> TeacherFactory:
    """A function (task, seed) -> backend: the expert is built per run, a server's client is shared,
    and an in-process model is loaded once per worker thread, as for eval's workers (one model cannot
    decode two prompts at once, and one shared behind a lock kept all but one core idle)."""
    if config.backend == "expert":
        from finetune.expert import ExpertBackend

        return lambda prepared, seed: ExpertBackend(prepared.task, seed)
    from agent.backends.factory import create_backend
    from eval_datasets.harness import BackendSource

    options = {"base_url": config.base_url} if config.base_url else {}
    first = create_backend(config.backend, config.model, **options)  # a bad --model fails before any run
    if config.backend == "openai":
        return lambda prepared, seed: first
    source = BackendSource(lambda: create_backend(config.backend, config.model, **options), first=first)
    return lambda prepared, seed: source.get()


def run_sample(prepared: Any, seed: int, config: CollectConfig, teacher: TeacherFactory) -> Sample:
    """One teacher run in its own folder; its trajectory is kept under ``trajectories/``."""
    from agent.loop import RunConfig
    from agent.runner import analyze
    from eval_datasets.harness import task_question

    task = prepared.task
    name = f"{task.id.replace('/', '__')}__s{seed}"
    run_dir = config.out / "runs" / name
    generation = RunConfig().generation
    generation.temperature, generation.seed = config.temperature, seed
    run_config = RunConfig(max_turns=task.limits.max_turns or config.max_turns, generation=generation)
    sample = Sample(task_id=task.id, kind=task.kind, seed=seed, verdict="crashed")
    try:
        result = analyze(
            # The same words, answer-format hint included, that `analyst eval` gives the model.
            [prepared.csv_path],
            task_question(prepared),
            run_dir,
            teacher(prepared, seed),
            run_config,
            task_id=task.id,
        )
    except Exception as exc:  # noqa: BLE001 - one broken run must not end the whole collection
        sample.detail = f"{type(exc).__name__}: {exc}"
        shutil.rmtree(run_dir, ignore_errors=True)
        return sample
    kept_path = config.out / "trajectories" / f"{name}.jsonl"
    kept_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.files["trajectory"], kept_path)
    sample.trajectory_path = str(kept_path.relative_to(config.out))
    sample.verdict, sample.detail = verify(prepared, result.trajectory)
    sample.turns, sample.errors = result.outcome.turns, result.outcome.errors
    sample.checks = sum(step.step_kind == "check" for step in result.trajectory.steps)
    sample.messages = training_messages(result.trajectory, run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # the trajectory is all we keep of the run folder
    return sample


def training_messages(trajectory: Trajectory, run_dir: Path) -> list[dict[str, Any]]:
    """The chat for training, with the run folder's absolute path cut out of figure notes.

    A reply whose cell failed, or a report the loop sent back for an answer check, is marked
    ``"train": false``: the trainer keeps it as context for the fix that follows but puts no loss on
    it. Trained on, the expert's planned mistakes were learnt as well as their fixes (tuned v4 sent
    ``df.corr('col', ...)`` 12 times on the held-out split).
    """
    prefixes = sorted({str(run_dir.resolve()) + "/", str(run_dir) + "/"}, key=len, reverse=True)
    untrained = iter(
        [
            step.step_kind == "check" or (step.execution is not None and not step.execution.ok)
            for step in trajectory.steps
        ]
    )
    messages: list[dict[str, Any]] = []
    for message in trajectory.messages():  # one assistant message per step, in step order
        content = message.content
        for prefix in prefixes:
            content = content.replace(prefix, "")
        messages.append({"role": message.role, "content": content})
        if message.role == "assistant" and next(untrained):
            messages[-1]["train"] = False
    return messages


_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def fingerprint(messages: list[dict[str, str]]) -> str:
    """A hash of the conversation with whitespace and memory addresses normalized."""
    text = "\n".join(f"{m['role']}: {' '.join(m['content'].split())}" for m in messages)
    return hashlib.sha256(_ADDRESS.sub("0x", text).encode()).hexdigest()


def drop_duplicates(samples: list[Sample]) -> None:
    """Mark later copies of an already kept conversation as dropped (``duplicate``)."""
    seen: dict[str, str] = {}
    for sample in samples:
        if not sample.kept:
            continue
        key = fingerprint(sample.messages)
        if key in seen:
            sample.verdict, sample.detail = "duplicate", f"same as {seen[key]}"
        else:
            seen[key] = f"{sample.task_id} seed {sample.seed}"


def prepare_out(config: CollectConfig) -> None:
    """Create the output folder; refuse to mix with an earlier dataset unless told to replace it."""
    if (config.out / "train.jsonl").exists() and not config.overwrite:
        raise CollectError(f"{config.out} already holds a dataset; pass --overwrite or choose another --out")
    for old in ("trajectories", "runs"):
        shutil.rmtree(config.out / old, ignore_errors=True)
    config.out.mkdir(parents=True, exist_ok=True)


def collect(
    config: CollectConfig,
    on_sample: Callable[[Sample, int, int], None] | None = None,
    teacher: TeacherFactory | None = None,
) -> dict[str, Any]:
    """Run the teacher over the selected train tasks and write the verified dataset; returns the stats.

    ``teacher`` overrides the backend named in ``config`` (tests pass scripted backends this way).
    """
    if config.samples < 1 or config.workers < 1:
        raise CollectError("--samples and --workers must be at least 1")
    prepared = select_tasks(config)
    prepare_out(config)
    teacher = teacher or make_teacher(config)
    jobs = [(p, seed) for p in prepared for seed in range(config.samples)]
    started = time.monotonic()
    samples: list[Sample] = [None] * len(jobs)  # type: ignore[list-item]
    done = Counter[str]()
    lock = threading.Lock()

    def work(index: int) -> None:
        sample = run_sample(*jobs[index], config, teacher)
        samples[index] = sample
        with lock:
            done["n"] += 1
            if on_sample is not None:
                on_sample(sample, done["n"], len(jobs))

    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        list(pool.map(work, range(len(jobs))))
    shutil.rmtree(config.out / "runs", ignore_errors=True)
    drop_duplicates(samples)
    from finetune.collect_stats import write_outputs

    return write_outputs(config, prepared, samples, time.monotonic() - started)


def config_dict(config: CollectConfig) -> dict[str, Any]:
    """The resolved config as JSON-ready values, saved in stats.json."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
