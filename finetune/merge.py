"""Fold a LoRA adapter into its base model's weights, giving a plain transformers model dir."""

from __future__ import annotations

import os
from pathlib import Path


class MergeError(RuntimeError):
    """The adapter or its base cannot be loaded; one line for the user."""


def merge_adapter(adapter: Path, out: Path) -> Path:
    """Load ``adapter`` on its base, ``merge_and_unload``, save model + tokenizer to ``out``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from agent.models import ModelError, hf_dir_for, resolve_model

    if not (adapter / "adapter_config.json").exists():
        raise MergeError(f"{adapter} is not a LoRA adapter (no adapter_config.json)")
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"{out} is not empty; choose another --out")
    try:
        resolved = resolve_model(adapter)
        if resolved.base is None:
            raise MergeError(f"{adapter}: the adapter names no base model")
        base_dir = hf_dir_for(resolved.base)
    except ModelError as exc:
        raise MergeError(str(exc)) from exc

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    # A trained adapter dir carries the tokenizer and inference chat template it was trained with; the
    # adapter shipped in the package leaves them out (they are the base's) to stay small.
    has_tokenizer = (adapter / "tokenizer_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(adapter if has_tokenizer else base_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
