"""The `analyst` command line: thin click commands that build a config and call the library.

Exit codes: 0 a final report was written; 1 bad input or a system fault (one line on stderr);
2 a usage error; 3 the run ended without a final report (turn/time limit, repeated error);
130 interrupted (Ctrl-C / SIGTERM; the partial trajectory and report are still written).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from agent.options import resample_option

EXIT_NO_REPORT = 3
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="analyst")
def main() -> None:
    """A local data analyst: a small model you own writes and runs Python on your data, then reports."""


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="FILE... QUESTION")
@click.option(
    "--model",
    default="default",
    show_default=True,
    help="default (= tuned, the shipped fine-tune) | base (untuned) | tuned | base-1.5b (untuned 1.5B, extra model-1p5b) | tuned-1.5b (its fine-tune) | a GGUF file | an HF model dir | a LoRA adapter dir | a server's model name",
)
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "llamacpp", "transformers", "openai", "scripted"]),
    help="auto: llama.cpp for GGUF on CPU, transformers for HF/adapter dirs",
)
@click.option("--base-url", envvar="ANALYST_BASE_URL", help="OpenAI-compatible server URL (openai backend)")
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), help="run folder [default: runs/<time>-<question>]"
)
@click.option("--max-turns", default=30, show_default=True, type=click.IntRange(1, 200))
@click.option("--time-budget", default=1800.0, show_default=True, help="wall-clock budget in seconds")
@click.option("--cell-timeout", default=120.0, show_default=True, help="seconds before a cell is interrupted")
@click.option("--max-new-tokens", default=512, show_default=True, type=click.IntRange(16, 8192))
@click.option("--temperature", default=0.0, show_default=True, help="0 = greedy")
@click.option("--seed", type=int, help="sampling seed")
@resample_option
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary on stdout")
def run(
    inputs,
    model,
    backend,
    base_url,
    out_dir,
    max_turns,
    time_budget,
    cell_timeout,
    max_new_tokens,
    temperature,
    seed,
    resample,
    quiet,
    as_json,
) -> None:
    """Analyse FILE(s) (CSV, TSV, Excel, Parquet) to answer QUESTION, ending with a report."""
    from agent.backends.base import BackendError
    from agent.loop import RunConfig
    from agent.preview import InputError
    from agent.runner import analyze, check_inputs, default_out_dir, raise_on_sigterm

    if len(inputs) < 2:
        raise click.UsageError("Give one or more data files, then the question in quotes")
    try:
        files, question = check_inputs(list(inputs[:-1]), inputs[-1])
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    generation = RunConfig().generation
    generation.max_new_tokens, generation.temperature, generation.seed = max_new_tokens, temperature, seed
    config = RunConfig(
        max_turns=max_turns,
        time_budget_s=time_budget,
        cell_timeout_s=cell_timeout,
        resample=resample,
        generation=generation,
    )
    out_dir = out_dir or default_out_dir(question)
    raise_on_sigterm()
    try:
        from agent.preview import check_writable

        check_writable(out_dir)
        model_backend = _make_backend(backend, model, base_url)
    except (InputError, BackendError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        # Loading a model can take a while (the first run assembles it); nothing is written yet.
        click.echo("interrupted while loading the model; nothing was run", err=True)
        sys.exit(EXIT_INTERRUPTED)
    callbacks = None if quiet or as_json else _progress(max_turns)
    result = analyze([], question, out_dir, model_backend, config, callbacks=callbacks, inputs=files)
    _finish(result, as_json, quiet)


def _make_backend(kind: str, model: str, base_url: str | None):
    from agent.backends.factory import create_backend

    options = {"base_url": base_url} if base_url else {}
    return create_backend(kind, model, **options)


def _progress(max_turns: int):
    from agent.display import RichProgress

    return RichProgress(max_turns)


def _finish(result, as_json: bool, quiet: bool) -> None:
    outcome = result.outcome
    if as_json:
        summary = outcome.model_dump(mode="json") | {
            "out_dir": str(result.out_dir),
            "files": {k: str(v) for k, v in result.files.items()},
        }
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        click.echo(
            f"{outcome.status}: {outcome.turns} turns, {outcome.wall_seconds:.0f}s. "
            f"Report: {result.files['report_html']}",
            err=True,
        )
    if result.error:
        raise click.ClickException(f"{result.error} (partial run saved in {result.out_dir})")
    if outcome.status == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    if outcome.status != "report":
        sys.exit(EXIT_NO_REPORT)


@main.command()
@click.argument("trajectory", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--full", is_flag=True, help="show whole observations instead of the first lines")
def replay(trajectory: Path, full: bool) -> None:
    """Print a recorded TRAJECTORY (a run's trajectory.jsonl) readably."""
    from agent.records import read_trajectory
    from agent.replay import print_trajectory

    try:
        record = read_trajectory(trajectory)
    except ValueError as exc:
        raise click.ClickException(
            f"{trajectory}: not a readable trajectory ({str(exc).splitlines()[0]})"
        ) from None
    print_trajectory(record, full=full)


def _register_subcommands() -> None:
    from eval_datasets.cli import datasets_group, eval_command
    from finetune.cli import collect_command, train_group

    for command in (eval_command, datasets_group, collect_command, train_group):
        main.add_command(command)


_register_subcommands()

if __name__ == "__main__":
    main()
