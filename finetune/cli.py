"""Click objects of the fine-tuning package, registered on ``analyst`` by ``agent/cli.py``.

``train_group``: ``analyst train DATA... --base MODEL --out DIR`` trains; ``analyst train merge`` and
``analyst train export`` turn the result into a full model and a GGUF file. Nothing heavy is imported
here: torch, transformers and trl load inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.collect_cli import collect_command

__all__ = ["collect_command", "train_group"]

PATH = click.Path(path_type=Path)


def _settings(pairs: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.ClickException(f"--set takes KEY=VALUE, not {pair!r}")
        settings[key.strip()] = value.strip()
    return settings


class _TrainGroup(click.Group):
    """A group whose own call takes DATA...; a first word naming a subcommand runs that instead."""

    # Options may follow DATA (`train data.jsonl --out x`), which plain groups do not allow.
    allow_interspersed_args = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            click.Command.parse_args(self, ctx, [])  # the group's own options keep their defaults
            ctx._protected_args, ctx.args = args[:1], args[1:]
            return ctx.args
        # DATA is variadic: a plain Group would take the first data file for a subcommand name.
        return click.Command.parse_args(self, ctx, args)


@click.group(
    "train",
    cls=_TrainGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("data", nargs=-1, type=PATH)
@click.option(
    "--base",
    default="default",
    show_default=True,
    help="default (= tuned: keep training the shipped adapter) | base (untuned) | tuned | base-1.5b | tuned-1.5b | a GGUF file | an HF model dir",
)
@click.option("--lora/--full", "lora", default=None, help="train a LoRA adapter (default) or all weights")
@click.option("--config", "config_file", type=PATH, help="JSON or YAML file of training settings")
@click.option("--out", type=PATH, help="output dir: adapter or model, configs, stats, checkpoints")
@click.option("--resume", is_flag=True, help="continue from the last checkpoint in --out")
@click.option("--epochs", type=float, help="passes over the data")
@click.option("--max-steps", type=int, help="stop after this many optimizer steps")
@click.option("--lr", "learning_rate", type=float, help="peak learning rate")
@click.option("--max-length", type=int, help="tokens per example (longer ones are cut)")
@click.option("--threads", type=int, help="torch CPU threads (0: all cores)")
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="any training setting, e.g. lora_rank=8"
)
@click.pass_context
def train_group(ctx: click.Context, data: tuple[Path, ...], base: str, lora: bool | None, **options) -> None:
    """Fine-tune a model on {"messages": [...]} JSONL with trl (loss on assistant turns only)."""
    if ctx.invoked_subcommand is not None:
        return
    if not data or options["out"] is None:
        raise click.UsageError("give DATA... and --out DIR (see analyst train --help)")
    from finetune.config import ConfigError, load_config
    from finetune.data import DataError
    from finetune.templates import TemplateError
    from finetune.train import TrainError, train

    out, resume, config_file = options.pop("out"), options.pop("resume"), options.pop("config_file")
    sets = _settings(options.pop("sets"))
    overrides = {**options, **sets}
    if lora is not None:
        overrides["mode"] = "lora" if lora else "full"
    try:
        config = load_config(config_file, overrides)
        result = train(list(data), base, out, config, resume=resume)
    except (ConfigError, DataError, TemplateError, TrainError) as exc:
        raise click.ClickException(str(exc)) from exc
    kind = "adapter" if config.mode == "lora" else "model"
    click.echo(
        f"{kind} written to {result.out} ({result.stats.examples} examples, {result.stats.tokens} tokens)"
    )


@train_group.command("merge")
@click.argument("adapter", type=PATH)
@click.option("--out", type=PATH, required=True, help="dir for the merged full model")
def merge_command(adapter: Path, out: Path) -> None:
    """Merge a LoRA adapter into its base model's weights."""
    from finetune.merge import MergeError, merge_adapter

    try:
        merge_adapter(adapter, out)
    except MergeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"merged model written to {out}")


@train_group.command("export")
@click.argument("model_dir", type=PATH)
@click.option("--to", "dest", type=PATH, required=True, help="the .gguf file to write")
@click.option("--quant", type=click.Choice(["f16", "q8_0", "q4_k_m"]), default="q8_0", show_default=True)
@click.option("--threads", type=int, default=0, help="quantizer threads (0: all cores)")
def export_command(model_dir: Path, dest: Path, quant: str, threads: int) -> None:
    """Export a Qwen2-family model (full, merged, or an adapter) to GGUF for the llama.cpp backend."""
    from finetune.export import ExportError, export_gguf
    from finetune.merge import MergeError

    try:
        export_gguf(model_dir, dest, quant, threads)
    except (ExportError, MergeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{quant} GGUF written to {dest}")
