"""Supervised fine-tuning on recorded conversations with trl's SFTTrainer: LoRA (peft) or full weights.

Loss is on assistant tokens only (``assistant_only_loss``; our ChatML templates mark them). The output
directory loads directly with ``analyst run --model DIR``: a PEFT adapter with its tokenizer (LoRA) or
a full model (full). Beside it: ``train_config.json`` (resolved settings), ``data_stats.json``,
``train_summary.json`` (s/step, tokens/s, peak RSS) and ``checkpoints/`` for ``--resume``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config import TrainConfig
from finetune.data import DataStats, data_files, measure, read_examples
from finetune.templates import inference_template, training_template

# Files whose presence means a finished training output lives in a directory.
_OUTPUT_MARKERS = ("adapter_config.json", "config.json")


class TrainError(RuntimeError):
    """A problem the user can fix (output exists, nothing to resume, unusable base); one line."""


@dataclass
class BaseWeights:
    """The model to start from: a transformers dir, and how adapters should name it."""

    hf_dir: Path
    spec: str


@dataclass
class TrainResult:
    out: Path
    stats: DataStats
    summary: dict[str, Any]


def resolve_base(spec: str) -> BaseWeights:
    """``default``/``base``/``base-1.5b``/GGUF file/HF dir -> a transformers dir (GGUFs are dequantized
    once, cached)."""
    from agent.models import LARGER_NAME, ModelError, hf_dir_for, resolve_model

    try:
        resolved = resolve_model(spec)
        if resolved.kind == "adapter":
            raise TrainError(
                f"{spec} is a LoRA adapter; merge it first (analyst train merge) and train on that"
            )
        hf_dir = hf_dir_for(resolved)
    except ModelError as exc:
        raise TrainError(str(exc)) from exc
    # Adapters record their base; "base" and "base-1.5b" stay valid on any machine, a cache path does not.
    is_base = spec in ("default", "base") and resolved.path == resolve_model("base").path
    name = "base" if is_base else spec if spec == LARGER_NAME else str(resolved.path)
    return BaseWeights(hf_dir=hf_dir, spec=name)


def init_adapter_record(adapter: Path) -> dict:
    """What a LoRA run started from: the adapter's targets (they decide what trains, not
    ``lora_targets``), its weights' sha256 and, for the shipped adapter, its model id."""
    from agent.records import file_sha256

    try:
        config = json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot start from adapter {adapter}: {exc}") from exc
    manifest = adapter / "manifest.json"
    model_id = json.loads(manifest.read_text()).get("model_id") if manifest.exists() else None
    weights = adapter / "adapter_model.safetensors"
    return {
        "init_adapter": {
            "path": str(adapter),
            "model_id": model_id,
            "sha256": file_sha256(weights) if weights.exists() else None,
            "target_modules": sorted(config.get("target_modules") or []),
        }
    }


def continue_shipped(base: str, config: TrainConfig) -> tuple[str, TrainConfig]:
    """LoRA on ``tuned`` (the shipped adapter; ``tuned-1.5b`` likewise over ``base-1.5b``): keep
    training that adapter over the untuned base, so the result is again one adapter over ``base``
    that stays valid on any machine.

    ``default`` is the model ``analyst run`` uses (``agent.models.default_name``: ``tuned`` when the
    adapter ships, else ``base``); with an explicit ``init_adapter`` it is ``base``, the base this
    project's adapters are trained over."""
    from agent.models import ModelError, default_name
    from agent.shipped import SHIPPED, read_manifest

    over = {shipped.name: shipped for shipped in SHIPPED}  # each shipped adapter, with its base
    if base != "default" and base not in over:
        return base, config  # a path: the shipped adapters' manifests are none of its business
    try:
        if base == "default":
            base = default_name() if not config.init_adapter else "base"
        shipped = over.get(base)
        ships = shipped is not None and read_manifest(shipped.adapter_dir) is not None
    except ModelError as exc:
        raise TrainError(str(exc)) from exc
    if shipped is None or config.mode != "lora" or config.init_adapter or not ships:
        return base, config
    return shipped.base, dataclasses.replace(config, init_adapter=str(shipped.adapter_dir))


def prepare_out(out: Path, resume: bool) -> Path | None:
    """Check the output dir; return the checkpoint to resume from (None for a fresh run)."""
    found = [p for p in (out / "checkpoints").glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()]
    checkpoints = sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    if resume:
        if not checkpoints:
            raise TrainError(f"nothing to resume: {out}/checkpoints holds no checkpoint")
        return checkpoints[-1]
    if any((out / name).exists() for name in _OUTPUT_MARKERS) or checkpoints:
        raise TrainError(f"{out} already holds a training run; pass --resume or choose another --out")
    return None


# CPU flags of bf16 matrix instructions: x86's avx512_bf16 and amx_bf16, Arm's bf16 (its "Features")
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU has bf16 matrix instructions; None where the system does not say (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    words: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            words.update(value.split())
    return bool(words & BF16_CPU_FLAGS) if words else None


def bf16_fallback(config: TrainConfig, cuda: bool, has_bf16: bool | None) -> tuple[TrainConfig, str | None]:
    """fp32 instead of bf16 autocast on a CPU without bf16 instructions, and the note that says so.

    There torch emulates bf16: on a 2-core AMD EPYC with AVX2 only, a bf16 matrix product took 19
    times as long as the fp32 one, and a recipe with ``bf16: true`` did not finish one step in 45
    minutes. The shipped recipes ask for bf16 (they were made on a CPU with AMX); fp32 keeps them usable.
    """
    if not config.bf16 or cuda or has_bf16 is not False:
        return config, None
    note = (
        "bf16 was asked for, but this CPU has no bf16 instructions (avx512_bf16, amx_bf16), where "
        "bf16 runs many times slower than fp32: training in fp32"
    )
    return dataclasses.replace(config, bf16=False), note


def load_model(hf_dir: Path, config: TrainConfig) -> tuple[Any, Any]:
    """The fp32 model and its tokenizer (bf16 is applied by autocast, so master weights stay fp32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def sft_config(config: TrainConfig, out: Path) -> Any:
    """Our settings as trl's SFTConfig."""
    import torch
    from trl import SFTConfig

    bucketing = config.group_by_length and config.batch_size > 1 and not config.packing
    return SFTConfig(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.resolved_learning_rate(),
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        activation_checkpointing=config.gradient_checkpointing,
        bf16=config.bf16,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),  # transformers refuses bf16 on CPU unless told
        max_length=config.max_length,
        packing=config.packing,
        train_sampling_strategy="group_by_length" if bucketing else "random",
        assistant_only_loss=True,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),  # on CPU, pinning only warns
    )


def lora_config(config: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
    )


def build_trainer(
    model: Any, tokenizer: Any, examples: list[dict], config: TrainConfig, out: Path
) -> tuple[Any, Any]:
    """An SFTTrainer over ``examples`` and its progress printer (rich lines instead of raw dicts)."""
    import datasets
    from rich.console import Console
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTTrainer

    from finetune.progress import ProgressPrinter

    datasets.disable_progress_bars()  # our progress lines say what matters
    printer = ProgressPrinter(Console(stderr=True, highlight=False))
    peft_config = lora_config(config) if config.mode == "lora" else None
    if config.mode == "lora" and config.init_adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)
        except (OSError, ValueError) as exc:
            raise TrainError(f"cannot start from adapter {config.init_adapter}: {exc}") from exc
        peft_config = None  # the adapter brings its own rank and targets
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, out),
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[printer],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer, printer


def is_main_process() -> bool:
    """Rank 0 under ``accelerate launch``/torchrun, or a plain single process: the one that writes."""
    return int(os.environ.get("RANK", "0")) == 0


def write_json(path: Path, data: Any) -> None:
    if not is_main_process():
        return
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }


def save_output(trainer: Any, tokenizer: Any, template: str, out: Path, base: BaseWeights) -> None:
    """Write the adapter or full model and a tokenizer carrying the inference chat template."""
    trainer.save_model(str(out))  # every rank: DeepSpeed/FSDP gather the weights collectively
    if not is_main_process():
        return
    tokenizer.chat_template = template
    tokenizer.save_pretrained(str(out))
    adapter_config = out / "adapter_config.json"
    if adapter_config.exists():
        data = json.loads(adapter_config.read_text())
        data["base_model_name_or_path"] = base.spec
        write_json(adapter_config, data)


def train(
    data: list[Path], base: str, out: Path, config: TrainConfig, *, resume: bool = False
) -> TrainResult:
    """Fine-tune ``base`` on the conversations in ``data``; write the result and its records to ``out``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # peft and transformers otherwise query the hub on save
    import torch
    from transformers import set_seed

    if config.mode == "full" and config.init_adapter:
        raise TrainError(
            "init_adapter is for LoRA; for a full fine-tune, merge the adapter and pass it as --base"
        )
    files = data_files(data)
    examples = read_examples(files)
    checkpoint = prepare_out(out, resume)
    base, config = continue_shipped(base, config)
    base_model = resolve_base(base)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    config, bf16_note = bf16_fallback(config, torch.cuda.is_available(), cpu_has_bf16())
    if bf16_note:
        print(f"note: {bf16_note}", file=sys.stderr, flush=True)
    set_seed(config.seed)
    model, tokenizer = load_model(base_model.hf_dir, config)
    original = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    override = Path(config.chat_template) if config.chat_template else None
    template = training_template(tokenizer, model.config.model_type, override)
    tokenizer.chat_template = template
    stats = measure(examples, tokenizer, template, config.max_length)
    stats.files = [str(f) for f in files]
    out.mkdir(parents=True, exist_ok=True)
    resolved = {**config.to_dict(), "learning_rate": config.resolved_learning_rate()}
    record = {"base": base_model.spec, "config": resolved, "versions": _versions()}
    if bf16_note:
        record["bf16_fallback"] = bf16_note
    if config.mode == "lora" and config.init_adapter:
        record.update(init_adapter_record(Path(config.init_adapter)))
        resolved["lora_targets"] = record["init_adapter"]["target_modules"]  # its own, not the defaults
    write_json(out / "train_config.json", record)
    write_json(out / "data_stats.json", stats.to_dict())
    trainer, printer = build_trainer(model, tokenizer, examples, config, out)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    write_json(out / "train_log.json", trainer.state.log_history)
    if printer.diverged:
        raise TrainError(
            f"training diverged: {printer.diverged}; no {config.mode} model was written "
            f"(lower the learning rate; see {out / 'train_log.json'})"
        )
    save_output(trainer, tokenizer, inference_template(original, template), out, base_model)
    summary = {**printer.summary.to_dict(), "torch_threads": torch.get_num_threads()}
    write_json(out / "train_summary.json", summary)
    return TrainResult(out=out, stats=stats, summary=summary)
