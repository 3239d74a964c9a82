"""A tiny random-init Qwen2 model and a ChatML BPE tokenizer, built offline for the training tests.

The tokenizer uses Qwen2's own pre-tokenizer (the split regex + byte-level BPE), so llama.cpp's
``qwen2`` pre-tokenizer splits text the same way after GGUF export. The vocabulary is smaller than
the embedding matrix, as in real Qwen checkpoints, so the exporter's padding path runs too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Qwen2's pre-tokenizer split pattern (from its tokenizer.json).
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def qwen_template() -> str:
    """Qwen2.5's own chat template (no generation markers), as trl ships a copy of it."""
    import importlib.resources

    return (importlib.resources.files("trl") / "chat_templates" / "qwen2_5.jinja").read_text()


CONVERSATION = [
    {"role": "system", "content": "You are a data analyst. Write Python in ```python blocks."},
    {"role": "user", "content": "Which city sold the most? File: shop.csv"},
    {
        "role": "assistant",
        "content": "Let me load the data.\n```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\n"
        "print(df.groupby('city')['sales'].sum())\n```",
    },
    {"role": "user", "content": "Output:\ncity\nKyiv    34\nOslo    24\nPune    39\n"},
    {"role": "assistant", "content": "## Final Report\nPune sold the most: @top_city[Pune]"},
]

_CORPUS = [m["content"] for m in CONVERSATION] * 20 + [
    "import pandas as pd\nimport numpy as np\nprint(df.describe())\n",
    "The mean price is 3.2 and the median is 2.9. Sales rise in spring.",
    "df.groupby('region').agg({'sales': 'sum'}).sort_values(ascending=False)",
]


def build_tokenizer(vocab_size: int = 420):
    """A byte-level BPE tokenizer with ChatML specials and Qwen2's pre-tokenizer, trained in memory."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = qwen_template()
    return tokenizer


def build_model_dir(path: Path, seed: int = 0) -> Path:
    """Save a tiny Qwen2 (2 layers, hidden 64, GQA) with the tiny tokenizer to ``path``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    vocab = (len(tokenizer) + 63) // 64 * 64  # padded past the tokenizer, as in real checkpoints
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        # Large init: sharply peaked logits, so greedy tokens are stable across f32/f16 runtimes.
        initializer_range=0.3,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_data(path: Path, copies: int = 4) -> Path:
    """A JSONL file of ``copies`` conversations like those ``analyst collect`` writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(copies):
            messages = [dict(m) for m in CONVERSATION]
            messages[1]["content"] += f" (task {index})"
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def test_tiny_tokenizer_round_trips_and_keeps_chatml_tokens_whole():
    tokenizer = build_tokenizer()
    text = "<|im_start|>user\nprint(df['sales'].sum())  # 42<|im_end|>\n"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in ids
    assert len(tokenizer) < 448
