"""``analyst collect``: run a teacher over the train split and keep verified trajectories.

Exposed as ``finetune.cli.collect_command``; nothing heavy is imported until the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

TEACHERS = ["expert", "openai", "llamacpp", "transformers", "auto"]


@click.command("collect")
@click.option("--split", default="train", show_default=True, help="task split; only 'train' is accepted")
@click.option(
    "--backend",
    default="expert",
    show_default=True,
    type=click.Choice(TEACHERS),
    help="the teacher: the built-in expert (no model needed) or a model backend",
)
@click.option("--model", default="default", show_default=True, help="model of a model backend")
@click.option("--base-url", envvar="ANALYST_BASE_URL", help="OpenAI-compatible server URL (openai backend)")
@click.option("--samples", default=1, show_default=True, type=click.IntRange(1, 100), help="runs per task")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="output folder")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="parallel runs")
@click.option(
    "--tasks", "pattern", default="*", show_default=True, help="glob on task ids, e.g. 'penguins/*'"
)
@click.option(
    "--drills",
    default=0,
    show_default=True,
    type=click.IntRange(0, 50),
    help="generated questions added per dataset (group means, shares, correlations, ...)",
)
@click.option(
    "--wide",
    default=0,
    show_default=True,
    type=click.IntRange(0, 500),
    help="also drill this many tables from outside the suite (needs --drills; held-out copies refused)",
)
@click.option("--temperature", default=0.7, show_default=True, help="sampling temperature of a model teacher")
@click.option("--max-turns", default=12, show_default=True, type=click.IntRange(1, 200))
@click.option("--overwrite", is_flag=True, help="replace a dataset already in --out")
@click.option("--quiet", is_flag=True, help="no line per run")
def collect_command(out_dir: Path, pattern: str, quiet: bool, **options) -> None:
    """Run a teacher over the train tasks; write verified runs to OUT/train.jsonl with OUT/stats.json."""
    from agent.backends.base import BackendError
    from finetune.collect import CollectConfig, CollectError, collect

    config = CollectConfig(out=out_dir, tasks=pattern, **options)
    try:
        stats = collect(config, on_sample=None if quiet else _echo_sample)
    except (CollectError, BackendError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    dropped = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()) or "none"
    click.echo(
        f"kept {stats['kept']} of {stats['runs']} runs (dropped: {dropped}); "
        f"{stats['tokens']['total']} tokens; written to {out_dir / 'train.jsonl'}"
    )


def _echo_sample(sample, done: int, total: int) -> None:
    """One line per finished run: its verdict and, for a dropped run, why."""
    why = "" if sample.kept or not sample.detail else f" ({sample.detail})"
    click.echo(
        f"[{done}/{total}] {sample.task_id} seed {sample.seed}: {sample.verdict}{why}, {sample.turns} turns"
    )
