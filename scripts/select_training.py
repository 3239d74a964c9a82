"""Pick a compact training set from an `analyst collect` folder: one conversation per task, under a
token budget, so that a LoRA epoch fits a CPU's afternoon.

    python scripts/select_training.py runs/collect-expert --budget 100000 --out data/headline

Deterministic. Per task it keeps one kept run: for every `--fix-every`-th task (in id order) a run in
which the model made a mistake and fixed it (a failed cell, or a report the answer check sent back),
otherwise the shortest run. Among a task's fixed runs it takes the kind of mistake (a column name, a
misspelt variable, dates read as text, a check, ...) taken least so far, then the shortest; a task with
a run fixing a rare kind (under a tenth of the fixed runs) always takes one and goes first in its
dataset, so that common kinds do not crowd out the rare ones. Each dataset's tasks are taken kind of
question by kind (a task file's question, then a drill of each kind, ...) in a fixed hashed order, not
id order. Open tasks fill up to `--open-share` of the budget, then closed tasks (they carry the
`@name[value]` answers the eval scores) the rest; within each group the datasets take turns, so every
dataset is represented. `--exclude` skips the tasks of an earlier selection, so that a further epoch
can train on questions the adapter has not seen. Writes OUT/train.jsonl and OUT/selection.json (what
was taken).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from agent import prompts
from eval_datasets.schema import load_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("collect_dir", type=Path)
    parser.add_argument("--budget", type=int, default=100_000, help="tokens in all (stats.json count)")
    parser.add_argument("--fix-every", type=int, default=3, help="take an error-and-fix run every N tasks")
    parser.add_argument("--open-share", type=float, default=0.15, help="budget share for open tasks")
    parser.add_argument(
        "--exclude",
        type=Path,
        action="append",
        default=[],
        metavar="SELECTION",
        help="an earlier selection.json whose tasks are skipped (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    stats = json.loads((args.collect_dir / "stats.json").read_text())
    lines = (args.collect_dir / "train.jsonl").read_text().splitlines()
    kept = [run for run in stats["runs_detail"] if run["verdict"] == "kept"]
    if len(kept) != len(lines):
        sys.exit(f"error: {len(kept)} kept runs in stats.json but {len(lines)} lines in train.jsonl")
    excluded = set()
    for path in args.exclude:
        try:
            excluded |= {entry.split(" ")[0] for entry in json.loads(path.read_text())["runs"]}
        except (OSError, ValueError, KeyError) as exc:
            sys.exit(f"error: --exclude {path}: not a selection.json ({exc})")
    lines = [line for run, line in zip(kept, lines, strict=True) if run["task"] not in excluded]
    kept = [run for run in kept if run["task"] not in excluded]

    # Drills (`collect --drills`) are generated, so the task files do not list them: all are closed.
    suite = {task.id: task.kind for spec in load_suite() for task in spec.tasks}
    kind = {run["task"]: run.get("kind") or suite.get(run["task"], "closed") for run in kept}
    by_task: dict[str, list[tuple[dict, str]]] = defaultdict(list)
    for run, line in zip(kept, lines, strict=True):
        by_task[run["task"]].append((run, line))

    # A kind of mistake under a tenth of the collection's fixed runs is rare: a task with such a
    # run always takes it, and goes first within its dataset, or a budget of a few dozen
    # conversations would hold none.
    # the kind of mistake of each run that fixed one, each conversation parsed once
    fault = {line: mistake(line) for run, line in zip(kept, lines, strict=True) if fixed_one(run)}
    seen = Counter(fault[line] for run, line in zip(kept, lines, strict=True) if fixed_one(run))
    rare = {name for name, count in seen.items() if count < 0.1 * sum(seen.values())}
    picks = []
    mistakes: dict[str, int] = defaultdict(int)
    for n, task_id in enumerate(sorted(by_task)):
        runs = sorted(by_task[task_id], key=lambda pair: (pair[0]["tokens"], pair[0]["seed"]))
        fixed = [pair for pair in runs if fixed_one(pair[0])]
        if fixed and (n % args.fix_every == 0 or any(fault[line] in rare for _, line in fixed)):
            pick = min(fixed, key=lambda pair: mistakes[fault[pair[1]]])  # min keeps the shortest on ties
            mistakes[fault[pick[1]]] += 1
            picks.append(pick)
        else:
            picks.append(runs[0])

    # Datasets take turns (each one's first task, then each one's second, ...), so that a budget
    # smaller than the collection still spreads over every dataset instead of the first in id order.
    # Within a dataset the kinds of question take turns too (a task file's question, a correlation
    # drill, a fit drill, ...): in id order the first drills are all `drill-corr-*`.
    def first(pair: tuple[dict, str]) -> int:
        return 0 if fixed_one(pair[0]) and fault[pair[1]] in rare else 1

    in_kind: dict[tuple[str, str], int] = defaultdict(int)
    ranked = []
    for run, line in sorted(picks, key=lambda pair: (first(pair), _shuffled(pair[0]["task"]))):
        dataset, kind_of = run["task"].split("/")[0], question_kind(run["task"])
        ranked.append(((first((run, line)), in_kind[dataset, kind_of], _shuffled(run["task"])), run, line))
        in_kind[dataset, kind_of] += 1
    rank: dict[str, int] = defaultdict(int)
    order = []
    for _, run, line in sorted(ranked, key=lambda item: item[0]):
        dataset = run["task"].split("/")[0]
        order.append((rank[dataset], dataset, run["task"], run, line))
        rank[dataset] += 1
    picks = [(run, line) for *_, run, line in sorted(order, key=lambda item: item[:3])]

    taken, total = [], 0
    for group, budget in (("open", args.budget * args.open_share), ("closed", args.budget)):
        for run, line in picks:
            if kind[run["task"]] != group or total + run["tokens"] > budget:
                continue
            taken.append((run, line))
            total += run["tokens"]

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.jsonl").write_text("".join(line + "\n" for _, line in taken))
    summary = {
        "source": str(args.collect_dir),
        "budget": args.budget,
        "exclude": [str(path) for path in args.exclude],
        "excluded_tasks": len(excluded),
        "conversations": len(taken),
        "tokens": total,
        "closed": sum(kind[run["task"]] == "closed" for run, _ in taken),
        "open": sum(kind[run["task"]] == "open" for run, _ in taken),
        "with_fixed_mistake": sum(fixed_one(run) for run, _ in taken),
        "mistakes": dict(sorted(Counter(fault[line] for run, line in taken if fixed_one(run)).items())),
        "turns": sum(run["turns"] for run, _ in taken),
        "runs": [f"{run['task']} s{run['seed']}" for run, _ in taken],
    }
    (args.out / "selection.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return 0


def question_kind(task_id: str) -> str:
    """``task`` for a task file's question, else the drill's first slug word (``corr``, ``fit``)."""
    name = task_id.split("/", 1)[-1]
    return name.split("-")[1] if name.startswith("drill-") and "-" in name[6:] else "task"


def _shuffled(task_id: str) -> str:
    """A fixed pseudo-random order of task ids (a hash), the same on every machine."""
    return hashlib.sha256(task_id.encode()).hexdigest()


ERROR_LINE = re.compile(r"^(\w+(?:Error|Exception)): ?(.*)$", re.MULTILINE)
# how the loop's answer-check messages begin (agent.prompts.CHECK_LEFT_OUT, CHECK_ANSWERS)
CHECK_OPENINGS = tuple(text.split("{", 1)[0] for text in (prompts.CHECK_LEFT_OUT, prompts.CHECK_ANSWERS))


def fixed_one(run: dict) -> bool:
    """A run that made a mistake and fixed it: a failed cell, or a report sent back by the answer
    check (``checks``; collections made before it was recorded have none)."""
    return run["errors"] > 0 or run.get("checks", 0) > 0


def mistake(line: str) -> str:
    """The first mistake a conversation shows, as a kind: an error (``KeyError``, ``NameError``,
    ``AttributeError: .dt`` for dates read as text, ...) or ``check`` for a report sent back by the
    answer check; '' when none."""
    for message in json.loads(line)["messages"]:
        if message["role"] != "user":
            continue
        if match := ERROR_LINE.search(message["content"]):
            name, text = match.groups()
            return f"{name}: .dt" if ".dt accessor" in text else name
        if message["content"].startswith(CHECK_OPENINGS):
            return "check"
    return ""


if __name__ == "__main__":
    raise SystemExit(main())
