"""Metrics over eval results, the printed tables, the HTML summary and the side-by-side comparison."""

from __future__ import annotations

import base64
import html
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eval_datasets.harness import TaskResult

# (key, label, higher is better, format)
METRICS: list[tuple[str, str, bool, str]] = [
    ("completion", "natural completion", True, "{:.1%}"),
    ("reported", "report (natural or asked for)", True, "{:.1%}"),
    ("correct", "correct (all answers / criteria)", True, "{:.1%}"),
    ("partial", "partial credit", True, "{:.3f}"),
    ("closed_correct", "closed tasks correct", True, "{:.1%}"),
    ("open_pass", "open tasks passed", True, "{:.1%}"),
    ("error_recovery", "error recovery", True, "{:.1%}"),
    ("mean_turns", "mean iterations", False, "{:.2f}"),
    ("mean_wall_s", "mean wall time (s)", False, "{:.1f}"),
    ("mean_tokens", "mean tokens per task", False, "{:.0f}"),
]


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def metrics(results: list[TaskResult]) -> dict[str, float | int | None]:
    """Overall figures of a set of results; rates are fractions, None where undefined."""
    closed = [r for r in results if r.kind == "closed"]
    opened = [r for r in results if r.kind == "open"]
    errored = [r for r in results if r.errors > 0]
    return {
        "tasks": len(results),
        # natural: the model ended with a report without being asked for one (see RunConfig)
        "completion": _mean(r.status == "report" and not r.wrap_up for r in results),
        "reported": _mean(r.status == "report" for r in results),
        "correct": _mean(r.correct for r in results),
        "partial": _mean(r.partial for r in results),
        "closed_correct": _mean(r.correct for r in closed),
        "open_pass": _mean(r.correct for r in opened),
        "runs_with_errors": len(errored),
        "error_recovery": _mean(r.recovered for r in errored),
        "mean_turns": _mean(r.turns for r in results),
        "mean_wall_s": _mean(r.wall_seconds for r in results),
        "total_wall_s": sum(r.wall_seconds for r in results),
        "mean_tokens": _mean(r.prompt_tokens + r.completion_tokens for r in results),
        "total_completion_tokens": sum(r.completion_tokens for r in results),
    }


def summarize(results: list[TaskResult], info: dict | None = None) -> dict:
    """summary.json: overall metrics, per dataset, status counts, plus run info (model, split, ...)."""
    statuses: dict[str, int] = defaultdict(int)
    for result in results:
        statuses[result.status] += 1
    return {
        **(info or {}),
        "overall": metrics(results),
        "statuses": dict(sorted(statuses.items())),
        "by_split": _grouped(results, lambda r: r.split),
        "by_kind": _grouped(results, lambda r: r.kind),
        "by_dataset": _grouped(results, lambda r: r.dataset),
    }


def _grouped(results: list[TaskResult], key: Callable[[TaskResult], str]) -> dict[str, dict]:
    groups: dict[str, list[TaskResult]] = defaultdict(list)
    for result in results:
        groups[key(result)].append(result)
    return {name: metrics(group) for name, group in sorted(groups.items())}


def fmt(value: float | int | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def overall_table(summary: dict, title: str = "overall") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    overall = summary["overall"]
    table.add_row("tasks", str(overall["tasks"]))
    for key, label, _, pattern in METRICS:
        table.add_row(label, fmt(overall.get(key), pattern))
    return table


def dataset_table(summary: dict) -> Table:
    table = Table(title="by dataset")
    for column in ("dataset", "tasks", "completion", "correct", "partial", "turns", "wall s"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for name, m in summary["by_dataset"].items():
        table.add_row(
            name,
            str(m["tasks"]),
            fmt(m["completion"], "{:.0%}"),
            fmt(m["correct"], "{:.0%}"),
            fmt(m["partial"], "{:.2f}"),
            fmt(m["mean_turns"], "{:.1f}"),
            fmt(m["mean_wall_s"], "{:.1f}"),
        )
    return table


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    console.print(dataset_table(summary))
    console.print(overall_table(summary))


def _bar_chart(summary: dict, key: str, label: str, pattern: str) -> str:
    """One metric per dataset as a horizontal bar chart, returned as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["by_dataset"])
    values = [summary["by_dataset"][n][key] or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    ax.barh(names, values, color="#4c72b0")
    overall = summary["overall"][key]
    if overall is not None:
        ax.axvline(overall, color="#c44e52", linestyle="--", label=f"overall {fmt(overall, pattern)}")
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    ax.set_title(label)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def summary_html(summary: dict, results: list[TaskResult]) -> str:
    """A self-contained page: run info, overall table, one bar chart per metric, every task's line."""
    info = {k: v for k, v in summary.items() if k not in ("overall", "statuses") and not k.startswith("by_")}
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{fmt(summary['overall'].get(key), pattern)}</td></tr>"
        for key, label, _, pattern in METRICS
    )
    charts = "".join(
        f'<figure><img alt="{html.escape(label)}" src="data:image/png;base64,'
        f'{_bar_chart(summary, key, label, pattern)}"></figure>'
        for key, label, _, pattern in METRICS
    )
    tasks = "".join(
        f"<tr><td>{html.escape(r.task_id)}</td><td>{r.kind}</td><td>{html.escape(r.status)}</td>"
        f"<td>{'yes' if r.correct else 'no'}</td><td>{r.partial:.2f}</td><td>{r.turns}</td>"
        f"<td>{r.wall_seconds:.1f}</td></tr>"
        for r in results
    )
    meta = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in info.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>analyst eval</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 8px;text-align:left}"
        "figure{display:inline-block;margin:.5em}</style></head><body><h1>analyst eval</h1>"
        f"<ul>{meta}</ul><h2>Overall ({summary['overall']['tasks']} tasks)</h2><table>{rows}</table>"
        f"<h2>Per dataset</h2>{charts}<h2>Tasks</h2><table><tr><th>task</th><th>kind</th><th>status</th>"
        f"<th>correct</th><th>partial</th><th>turns</th><th>wall s</th></tr>{tasks}</table></body></html>"
    )


def compare_table(a: dict, b: dict, name_a: str, name_b: str) -> Table:
    """Overall metrics of two runs side by side with B - A deltas."""
    table = Table(title=f"{name_a} vs {name_b}")
    for column in ("metric", name_a, name_b, "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    table.add_row("tasks", str(a["overall"]["tasks"]), str(b["overall"]["tasks"]), "")
    for key, label, higher_better, pattern in METRICS:
        # .get: a summary written before a metric existed lacks it
        va, vb = a["overall"].get(key), b["overall"].get(key)
        delta = "-"
        if va is not None and vb is not None:
            diff = vb - va
            colour = "green" if (diff > 0) == higher_better else "red"
            text = pattern.replace("{:", "{:+")
            delta = f"[{colour}]{text.format(diff)}[/]" if diff else text.format(diff)
        table.add_row(label, fmt(va, pattern), fmt(vb, pattern), delta)
    return table


def task_flips(a: dict[str, TaskResult], b: dict[str, TaskResult]) -> tuple[list[str], list[str]]:
    """Tasks in both runs that B gets right and A wrong (fixed), and the reverse (broken)."""
    common = sorted(set(a) & set(b))
    fixed = [t for t in common if b[t].correct and not a[t].correct]
    broken = [t for t in common if a[t].correct and not b[t].correct]
    return fixed, broken


def write_summary(out: Path, results: list[TaskResult], info: dict | None = None) -> dict:
    """Write summary.json and summary.html into ``out`` and return the summary."""
    summary = summarize(results, info)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.html").write_text(summary_html(summary, results), encoding="utf-8")
    return summary
