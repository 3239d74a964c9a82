"""`analyst eval`, `analyst eval compare` and `analyst datasets`: thin wiring over the harness."""

from __future__ import annotations

from pathlib import Path

import click

from agent.options import resample_option

CACHE_HELP = "dataset cache [default: $ANALYST_CACHE/datasets or ~/.cache/analyst/datasets]"


@click.group("datasets")
def datasets_group() -> None:
    """The evaluation suite's datasets: materialize them as CSV, list them."""


@datasets_group.command("prepare")
@click.option("--cache", type=click.Path(path_type=Path), help=CACHE_HELP)
@click.option("--only", multiple=True, help="prepare only these datasets (repeatable)")
@click.option("--force", is_flag=True, help="rewrite the CSVs even if present")
def prepare_command(cache: Path | None, only: tuple[str, ...], force: bool) -> None:
    """Write every dataset as CSV into the cache and compute the reference answers (no downloads)."""
    from eval_datasets.prepare import ReferenceCodeError, default_cache, prepare_datasets
    from eval_datasets.schema import load_suite

    cache = cache or default_cache()
    specs = _pick(load_suite(), only)
    try:
        metas = prepare_datasets(specs, cache, force=force)
    except ReferenceCodeError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise click.ClickException(f"Cannot write the cache {cache}: {exc.strerror or exc}") from None
    for meta in metas:
        click.echo(f"{meta.name:<16} {meta.rows:>7} rows  {meta.split:<8} {cache / meta.name / meta.csv}")
    click.echo(f"{len(specs)} datasets prepared in {cache}")


def _pick(specs: list, only: tuple[str, ...]) -> list:
    names = {s.name for s in specs}
    unknown = sorted(set(only) - names)
    if unknown:
        raise click.ClickException(f"No such dataset: {unknown[0]} (see `analyst datasets list`)")
    return [s for s in specs if not only or s.name in only]


@datasets_group.command("list")
@click.option("--cache", type=click.Path(path_type=Path), help=CACHE_HELP)
def list_command(cache: Path | None) -> None:
    """Print the suite: dataset, split, rows (once prepared), tasks, source and licence."""
    from rich.console import Console
    from rich.table import Table

    from eval_datasets.prepare import default_cache, load_meta
    from eval_datasets.schema import load_suite

    cache = cache or default_cache()
    table = Table(title=f"evaluation datasets (cache {cache})")
    for column in ("dataset", "split", "rows", "tasks", "source", "licence"):
        table.add_column(column, justify="right" if column in ("rows", "tasks") else "left")
    specs = load_suite()
    for spec in specs:
        meta = load_meta(spec, cache)
        rows = str(meta.rows) if meta else "-"
        source = f"{spec.source.package}: {spec.source.item}"
        table.add_row(spec.name, spec.split, rows, str(len(spec.tasks)), source, spec.licence)
    Console().print(table)
    heldout = sum(s.split == "heldout" for s in specs)
    click.echo(f"{len(specs)} datasets ({heldout} heldout), {sum(len(s.tasks) for s in specs)} tasks")


@click.group("eval", invoke_without_command=True)
@click.option("--split", default="heldout", show_default=True, type=click.Choice(["heldout", "train", "all"]))
@click.option("--tasks", "pattern", default="*", show_default=True, help="glob over task ids, e.g. 'mpg/*'")
@click.option("--limit", type=click.IntRange(1), help="run at most K tasks (interleaved across datasets)")
@click.option("--model", default="default", show_default=True, help="as for `analyst run`")
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "llamacpp", "transformers", "openai", "scripted"]),
)
@click.option("--base-url", envvar="ANALYST_BASE_URL", help="OpenAI-compatible server URL (openai backend)")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="tasks run at once, each with its own kernel and backend",
)
@click.option("--max-turns", type=click.IntRange(1, 200), help="override every task's turn limit")
@click.option("--time-budget", type=click.FloatRange(1), help="override every task's time budget (s)")
@resample_option
@click.option("--cache", type=click.Path(path_type=Path), help=CACHE_HELP)
@click.option("--out", type=click.Path(path_type=Path), help="output folder; re-running resumes")
@click.pass_context
def eval_command(ctx: click.Context, out: Path | None, **options) -> None:
    """Run the agent on suite tasks and score it (`analyst eval compare A B` compares two runs)."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise click.UsageError("Missing option '--out' (the folder for results; re-running resumes)")
    _run_eval(out, **options)


def _run_eval(out: Path, pattern: str, model: str, backend: str, base_url: str | None, **options) -> None:
    from rich.console import Console

    from agent.backends.base import BackendError
    from agent.loop import RunConfig
    from eval_datasets.harness import EvalConfig, other_models, run_eval, select_tasks
    from eval_datasets.summary import print_summary, write_summary

    config = EvalConfig(
        out=out,
        split=options["split"],
        tasks=pattern,
        limit=options["limit"],
        workers=options["workers"],
        cache=options["cache"],
        max_turns=options["max_turns"],
        time_budget_s=options["time_budget"],
    )
    from eval_datasets.prepare import ReferenceCodeError

    try:
        tasks = select_tasks(config.split, config.tasks, config.limit, config.cache)
    except ReferenceCodeError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise click.ClickException(f"Cannot prepare the datasets: {exc.strerror or exc}") from None
    if not tasks:
        raise click.ClickException(f"No {config.split} task matches {pattern!r}")
    try:
        backends, model_id = _backend_source(backend, model, base_url)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    mixed = other_models(out, model_id)
    if mixed:
        raise click.ClickException(
            f"{out} holds results of {sorted(mixed)[0]}, not {model_id}: use another --out to evaluate this model"
        )
    from agent.runner import raise_on_sigterm

    raise_on_sigterm()  # a terminated eval records its current task as interrupted, like Ctrl-C
    console = Console()
    console.print(f"{len(tasks)} tasks, {config.workers} worker(s), results in {out}")
    base = RunConfig(resample=options["resample"])
    results = run_eval(tasks, config, backends, base, on_result=lambda r: _progress(console, r))
    info = {
        "split": config.split,
        "tasks_glob": pattern,
        "limit": config.limit,
        "model": model,
        "backend": backend,
        "model_id": results[0].model if results else "",
        "workers": config.workers,
        "resample": base.resample,
    }
    print_summary(write_summary(out, results, info), console)
    if any(r.status == "interrupted" for r in results):
        console.print(f"Interrupted: run the same command again to resume into {out}")
        raise SystemExit(130)  # as `analyst run` does on Ctrl-C


def _backend_source(kind: str, model: str, base_url: str | None):
    from agent.backends.factory import create_backend
    from eval_datasets.harness import BackendSource

    options = {"base_url": base_url} if base_url else {}

    def factory():
        return create_backend(kind, model, **options)

    first = factory()
    # A scripted backend is a queue of replies: each task replays it from the start.
    return BackendSource(factory, per_task=kind == "scripted", first=first), first.model_id


def _progress(console, result) -> None:
    mark = "[green]ok[/]" if result.correct else "[red]--[/]"
    console.print(
        f"{mark} {result.task_id:<44} {result.status:<14} turns {result.turns:>2}  "
        f"{result.wall_seconds:6.1f}s  partial {result.partial:.2f}",
        soft_wrap=True,  # one line per task, however narrow the terminal
    )


@eval_command.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
def compare_command(run_a: Path, run_b: Path) -> None:
    """Print two eval runs side by side with deltas (B - A)."""
    from rich.console import Console

    from eval_datasets.harness import RESULTS, read_results
    from eval_datasets.summary import compare_table, summarize, task_flips

    loaded = []
    for run in (run_a, run_b):
        if not (run / RESULTS).is_file():
            raise click.ClickException(f"No {RESULTS} in {run}: not an eval output folder")
        loaded.append(read_results(run))
    a, b = loaded
    console = Console()
    console.print(
        compare_table(summarize(list(a.values())), summarize(list(b.values())), run_a.name, run_b.name)
    )
    fixed, broken = task_flips(a, b)
    common = len(set(a) & set(b))
    console.print(
        f"{common} task{'s' if common != 1 else ''} in both; {len(fixed)} fixed, {len(broken)} broken in {run_b.name}"
    )
    for label, ids in (("fixed", fixed), ("broken", broken)):
        for task_id in ids:
            console.print(f"  {label}: {task_id}")
