"""The training configuration: one dataclass with help on every field, loadable from JSON or YAML.

Precedence, lowest first: the defaults below, then ``--config FILE``, then command-line flags. The
resolved config is saved beside every training output (``train_config.json``).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

Mode = Literal["lora", "full"]

# Every linear projection of a Qwen2/Llama block; LoRA on all of them learns most per step.
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ConfigError(ValueError):
    """A config file or override the user must fix; the message is one line."""


@dataclass
class TrainConfig:
    """How to fine-tune: LoRA or full weights, schedule, sequence handling, CPU settings."""

    mode: Mode = field(default="lora", metadata={"help": "lora: train a PEFT adapter; full: all weights."})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank r."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha (effective scale alpha/r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_targets: list[str] = field(
        default_factory=lambda: list(ALL_LINEAR),
        metadata={"help": "Module names that get LoRA adapters (attention only is faster, all learns more)."},
    )
    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "LoRA: start from this adapter dir's weights (rank and targets included) instead of a "
            "fresh init, e.g. to keep training a tuned model; its base must be --base."
        },
    )
    epochs: float = field(
        default=1.0, metadata={"help": "Passes over the data (ignored when max_steps > 0)."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Stop after this many optimizer steps (-1: use epochs)."}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate; None: 2e-4 for LoRA, 1e-5 for full."}
    )
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Fraction of steps spent warming up."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_length: int = field(
        default=2048, metadata={"help": "Tokens per example; longer ones are cut at the end (keep_start)."}
    )
    batch_size: int = field(default=1, metadata={"help": "Examples per device per forward pass."})
    grad_accum: int = field(default=8, metadata={"help": "Forward passes per optimizer step."})
    group_by_length: bool = field(
        default=True,
        metadata={"help": "Bucket examples of similar length into a batch so little padding is computed."},
    )
    packing: bool = field(
        default=False,
        metadata={"help": "Pack several examples into one max_length row (best-fit, no padding)."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "Recompute activations in backward: less memory, ~30% slower; off when RAM allows."
        },
    )
    bf16: bool = field(
        default=False, metadata={"help": "bf16 autocast (fast on CPUs with AMX/avx512_bf16 and on GPUs)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for data order, LoRA init and dropout."})
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0: all cores."})
    save_steps: int = field(default=50, metadata={"help": "Write a checkpoint every this many steps."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints to keep (oldest are deleted)."})
    logging_steps: int = field(
        default=1, metadata={"help": "Report loss and tokens/s every this many steps."}
    )
    chat_template: str | None = field(
        default=None,
        metadata={"help": "Jinja file with {% generation %} markers; None: ours for ChatML models."},
    )

    def resolved_learning_rate(self) -> float:
        """The learning rate to use: the explicit one, else the mode's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.mode == "lora" else 1e-5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Turn a string or JSON value into the field's type, or raise ConfigError naming the field."""
    origin = typing.get_origin(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if value is None and type(None) in typing.get_args(kind):
        return None
    if origin is Literal:
        if value not in typing.get_args(kind):
            raise ConfigError(f"{name} must be one of {', '.join(typing.get_args(kind))}, not {value!r}")
        return value
    if origin is list:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, not {value!r}")
        return [str(item) for item in value]
    target = args[0] if args else kind
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in typing.get_args(kind):
        return None
    try:
        if target is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        return target(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be {target.__name__}, not {value!r}") from exc


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with ``overrides`` (field name -> value) applied and type-checked."""
    hints = typing.get_type_hints(TrainConfig)
    known = {f.name for f in fields(TrainConfig)}
    changes = {}
    for name, value in overrides.items():
        key = name.replace("-", "_")
        if key not in known:
            raise ConfigError(f"unknown training setting {name!r} (known: {', '.join(sorted(known))})")
        changes[key] = _coerce(key, hints[key], value)
    return dataclasses.replace(config, **changes)


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a JSON or YAML file, as a dict."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    import yaml

    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config {path} is not valid: {str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping of settings")
    return data


def load_config(path: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the file at ``path`` (if any), then ``overrides`` from the command line."""
    config = TrainConfig()
    if path is not None:
        config = apply_overrides(config, read_config_file(path))
    config = apply_overrides(config, {k: v for k, v in overrides.items() if v is not None})
    if config.mode == "lora" and not config.lora_targets:
        raise ConfigError("lora_targets is empty")
    if config.max_length < 16 or config.batch_size < 1 or config.grad_accum < 1:
        raise ConfigError("max_length >= 16, batch_size >= 1 and grad_accum >= 1 are required")
    return config
