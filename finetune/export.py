"""Export a Qwen2-family transformers model (full or merged LoRA) to GGUF for the llama.cpp backend.

A compact converter on top of the ``gguf`` package: llama.cpp's tensor names come from
``gguf.get_tensor_name_map``, the BPE vocabulary and merges from the saved tokenizer, the chat template
from the model dir. It writes f16 (1-D tensors stay f32, as llama.cpp expects); q8_0 and q4_k_m are
then made by llama.cpp's own quantizer through llama-cpp-python. Only the Qwen2 architecture is
handled (no q/k permutation, no other rope layouts); other families fail with a clear message.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from finetune.templates import strip_markers

# llama.cpp's llama_ftype values for the quantizer; f16 needs no quantizer pass.
QUANT_TYPES = {"f16": 1, "q8_0": 7, "q4_k_m": 15}


class ExportError(RuntimeError):
    """The model cannot be exported; one line for the user."""


def _rope_theta(config: dict[str, Any]) -> float:
    params = config.get("rope_parameters") or {}
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def add_metadata(writer: Any, config: dict[str, Any], name: str, file_type: int) -> None:
    """Architecture hyperparameters llama.cpp reads for a qwen2 model."""
    writer.add_name(name)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads", config["num_attention_heads"]))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(file_type)


def vocab_entries(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings and llama.cpp token types for ids 0..vocab_size-1 (holes become unused pads)."""
    import gguf

    reverse = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in reverse:
            # The embedding matrix is padded past the tokenizer; llama.cpp needs a row label for each.
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(reverse[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[index])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def add_vocab(writer: Any, model_dir: Path, tokenizer: Any, vocab_size: int) -> None:
    """The BPE vocabulary, merges, special ids and the inference chat template."""
    import gguf

    tokens, types = vocab_entries(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")  # Qwen2's pre-tokenizer regex, which llama.cpp knows by this name
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise ExportError(
            f"{model_dir}/tokenizer.json holds no BPE merges; only BPE tokenizers are supported"
        )
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    special.chat_template = strip_markers(template) if template else None
    special.add_special_token.setdefault("bos", False)  # Qwen prompts start without a BOS token
    special.add_to_gguf(writer, quiet=True)


def weight_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir} holds no .safetensors weights")
    return files


def add_tensors(writer: Any, model_dir: Path, config: dict[str, Any]) -> int:
    """Every weight under its llama.cpp name: matrices as f16, norms and biases as f32."""
    import gguf
    import numpy as np
    import torch
    from safetensors import safe_open

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, config["num_hidden_layers"])
    tied = config.get("tie_word_embeddings", False)
    count = 0
    for path in weight_files(model_dir):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                if key.endswith("rotary_emb.inv_freq") or (tied and key == "lm_head.weight"):
                    continue
                target = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise ExportError(f"no llama.cpp name for tensor {key}")
                data = handle.get_tensor(key).to(torch.float32).numpy()
                writer.add_tensor(target, data.astype(np.float16 if data.ndim == 2 else np.float32))
                count += 1
    return count


def write_f16(model_dir: Path, dest: Path) -> Path:
    """Convert the transformers model in ``model_dir`` to an f16 GGUF at ``dest``."""
    import gguf
    from transformers import AutoTokenizer

    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "qwen2":
        raise ExportError(f"GGUF export supports the qwen2 family only, not {config.get('model_type')!r}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    writer = gguf.GGUFWriter(str(dest), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN2])
    add_metadata(writer, config, model_dir.resolve().name, gguf.LlamaFileType.MOSTLY_F16)
    add_vocab(writer, model_dir, tokenizer, config["vocab_size"])
    add_tensors(writer, model_dir, config)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


def quantize(source: Path, dest: Path, quant: str, threads: int = 0) -> Path:
    """Quantize a GGUF with llama.cpp's quantizer (through llama-cpp-python)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[quant]
    params.nthread = threads or (os.cpu_count() or 1)
    # llama.cpp writes a line per tensor, and a k-quant fallback warning for each 896-wide matrix, to
    # the process's stderr: they go to a scratch file instead, whose last line is the error on failure.
    log_path = dest.with_name(dest.name + ".quantize.log")
    log = logging.getLogger("llama-cpp-python")
    level = log.level
    log.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log_path, "w") as handle:
            os.dup2(handle.fileno(), 2)
            status = llama_cpp.llama_model_quantize(
                str(source).encode(), str(dest).encode(), ctypes.byref(params)
            )
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        log.setLevel(level)
    log_text = log_path.read_text(errors="replace") if status != 0 else ""
    log_path.unlink(missing_ok=True)
    if status != 0:
        lines = [line.strip() for line in log_text.splitlines() if line.strip()]
        last = lines[-1] if lines else "no log"
        raise ExportError(f"llama.cpp could not quantize {source.name} to {quant} (status {status}: {last})")
    return dest


def export_gguf(model_dir: Path, dest: Path, quant: str = "f16", threads: int = 0) -> Path:
    """``model_dir`` (full, merged, or a LoRA adapter, merged on the fly) -> GGUF at ``dest``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if quant not in QUANT_TYPES:
        raise ExportError(f"unknown quantization {quant!r} (choose {', '.join(QUANT_TYPES)})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as scratch:
        if (model_dir / "adapter_config.json").exists():
            from finetune.merge import merge_adapter

            model_dir = merge_adapter(model_dir, Path(scratch) / "merged")
        elif not (model_dir / "config.json").exists():
            raise ExportError(f"{model_dir} is neither a model dir (config.json) nor a LoRA adapter")
        # Written beside dest and renamed at the end, so a failure never leaves a half file at dest.
        f16 = write_f16(model_dir, Path(scratch) / "model-f16.gguf")
        if quant == "f16":
            os.replace(f16, dest)
        else:
            quantize(f16, Path(scratch) / "model-q.gguf", quant, threads)
            os.replace(Path(scratch) / "model-q.gguf", dest)
    return dest
