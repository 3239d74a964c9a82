"""GGUF export of a tuned tiny Qwen2: llama.cpp loads it and continues a prompt as transformers does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from finetune.cli import train_group
from finetune.config import load_config
from finetune.export import ExportError, export_gguf
from finetune.train import train
from tests.test_finetune_tiny import CONVERSATION, tiny_dir, write_data

__all__ = ["tiny_dir"]
NEW_TOKENS = 8


def trained(tiny_dir: Path, tmp_path: Path, mode: str) -> Path:
    """``tiny_dir`` after two training steps (a LoRA adapter dir or a full model dir)."""
    config = load_config(None, {"max_steps": 2, "grad_accum": 1, "mode": mode, "learning_rate": 1e-2})
    return train([write_data(tmp_path / "train.jsonl")], str(tiny_dir), tmp_path / mode, config).out


def transformers_greedy(model, ids: list[int]) -> tuple[list[int], np.ndarray]:
    """Greedy tokens (never stopping at EOS) and the logits that chose them."""
    import torch

    tokens, rows = list(ids), []
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            logits = model(torch.tensor([tokens])).logits[0, -1]
            rows.append(logits.numpy())
            tokens.append(int(logits.argmax()))
    return tokens[len(ids) :], np.stack(rows)


def llama_greedy(path: Path, ids: list[int]) -> tuple[list[int], np.ndarray]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    llm.eval(ids)
    tokens, rows = [], []
    for _ in range(NEW_TOKENS):
        logits = np.array(llm.scores[llm.n_tokens - 1])
        rows.append(logits)
        tokens.append(int(logits.argmax()))
        llm.eval([tokens[-1]])
    return tokens, np.stack(rows)


def test_f16_export_of_a_trained_adapter_continues_like_transformers(tiny_dir, tmp_path):
    import llama_cpp
    from gguf import GGUFReader
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = trained(tiny_dir, tmp_path, "lora")
    dest = tmp_path / "tuned-f16.gguf"
    result = CliRunner().invoke(train_group, ["export", str(adapter), "--to", str(dest), "--quant", "f16"])
    assert result.exit_code == 0, result.output

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    fields = GGUFReader(str(dest)).fields
    assert fields["general.architecture"].contents() == "qwen2"
    assert fields["tokenizer.chat_template"].contents() == tokenizer.chat_template
    assert len(fields["tokenizer.ggml.tokens"].contents()) == 448  # padded past the 420-token vocab

    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt)["input_ids"]
    vocab = llama_cpp.Llama(model_path=str(dest), vocab_only=True, verbose=False)
    assert vocab.tokenize(prompt.encode(), add_bos=False, special=True) == ids  # same BPE + pre-tokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), adapter).eval()
    expected, hf_logits = transformers_greedy(model, ids)
    got, cpp_logits = llama_greedy(dest, ids)
    assert got == expected
    # f16 weights: the logits agree to a small fraction of their spread, not just at the top.
    spread = hf_logits.max() - hf_logits.min()
    assert np.abs(cpp_logits - hf_logits).max() < 0.02 * spread

    # What `analyst run --model DIR|FILE` does: both outputs load, and reply alike.
    from agent.backends.base import GenerationConfig
    from agent.backends.factory import create_backend
    from agent.records import Message

    messages = [Message(**m) for m in CONVERSATION[:2]]
    greedy = GenerationConfig(max_new_tokens=NEW_TOKENS, temperature=0.0)
    from_adapter = create_backend("auto", str(adapter))
    from_gguf = create_backend("auto", str(dest))
    assert (from_adapter.name, from_gguf.name) == ("transformers", "llamacpp")
    assert from_gguf.generate(messages, greedy).text == from_adapter.generate(messages, greedy).text


def test_q8_0_export_of_a_full_model_is_quantized_by_llama_cpp(tiny_dir, tmp_path):
    from gguf import GGUFReader

    full = trained(tiny_dir, tmp_path, "full")
    f16 = export_gguf(full, tmp_path / "full-f16.gguf", "f16")
    q8 = export_gguf(full, tmp_path / "full-q8.gguf", "q8_0")
    reader = GGUFReader(str(q8))
    assert int(reader.fields["general.file_type"].contents()) == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q8_0" and kinds["blk.0.attn_norm.weight"] == "F32"
    assert q8.stat().st_size < f16.stat().st_size
    tokens, _ = llama_greedy(q8, [1, 10, 20, 30])
    assert len(tokens) == NEW_TOKENS
    assert not list(tmp_path.glob(".export-*"))  # the scratch dir is gone


def test_export_refuses_what_it_cannot_convert(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama_dir = tmp_path / "llama"
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    LlamaForCausalLM(config).save_pretrained(llama_dir)
    with pytest.raises(ExportError, match="qwen2 family only"):
        export_gguf(llama_dir, tmp_path / "x.gguf")
    failed = CliRunner().invoke(train_group, ["export", str(tmp_path), "--to", str(tmp_path / "y.gguf")])
    assert failed.exit_code == 1 and "neither a model dir" in failed.output
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "y.gguf").exists()
