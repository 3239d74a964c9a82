"""The transformers backend on a tiny random-init Qwen2 built here: KV reuse, stops, sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.backends.base import GenerationConfig
from agent.backends.chat_template import CHATML_TEMPLATE
from agent.records import Message

torch = pytest.importorskip("torch")

CORPUS = [
    "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint(df.describe())",
    "The mean revenue per region is 42.5 and the median is 40.",
    "## Final Report\nSales grew in every quarter; @total[1234]",
    "def f(x):\n    return x * 2\nprint(f(21))",
] * 20


def build_tiny_qwen(directory: Path) -> Path:
    """Save a 2-layer random Qwen2 with a byte-level BPE tokenizer trained on a few lines of code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML_TEMPLATE
    )
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        # A wide init makes the random model's greedy text varied instead of one repeated token.
        initializer_range=0.3,
    )
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


def make_backend(path: Path, **kwargs):
    from agent.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(path), **kwargs)
    # A random model rarely samples EOS; make sure it never does so that lengths are predictable.
    backend.eos_ids = set()
    return backend


def conversation(turns: int) -> list[Message]:
    messages = [Message(role="system", content="You analyse data with pandas.")]
    messages.append(Message(role="user", content="What is the mean revenue?"))
    for i in range(turns - 1):
        messages.append(Message(role="assistant", content=f"print(df.describe())  # step {i}"))
        messages.append(Message(role="user", content=f"revenue mean 42.{i} median 40"))
    return messages


def count_embedded_tokens(backend) -> list[int]:
    """Count the tokens the model really runs, at its input embedding, one entry per forward."""
    seen: list[int] = []
    backend.model.get_input_embeddings().register_forward_hook(
        lambda m, args, out: seen.append(args[0].numel())
    )
    return seen


GREEDY = GenerationConfig(max_new_tokens=12, temperature=0.0)


def test_kv_reuse_gives_fresh_greedy_text_and_runs_only_new_tokens(tiny_dir: Path) -> None:
    reused = make_backend(tiny_dir)
    seen = count_embedded_tokens(reused)
    messages = conversation(1)
    first = reused.generate(messages, GREEDY)
    assert first.cached_tokens == 0 and first.completion_tokens == 12
    for turn in range(2, 5):
        previous = len(reused.prompt_ids(messages))
        messages = messages + [
            Message(role="assistant", content=first.text),
            Message(role="user", content=f"observation {turn}: 17 rows"),
        ]
        seen.clear()
        reply = reused.generate(messages, GREEDY)
        fresh = make_backend(tiny_dir, reuse_cache=False).generate(messages, GREEDY)
        assert reply.text == fresh.text
        prompt_len = len(reused.prompt_ids(messages))
        assert reply.prompt_tokens == prompt_len
        # Everything up to the previous turn's reply is reused; only the new message is run.
        assert reply.cached_tokens >= previous
        assert seen[0] == prompt_len - reply.cached_tokens == reused.last_prefill_tokens
        assert sum(seen) == seen[0] + reply.completion_tokens - 1
        first = reply


def test_cache_crops_when_history_diverges(tiny_dir: Path) -> None:
    backend = make_backend(tiny_dir)
    backend.generate(conversation(3), GREEDY)
    edited = conversation(3)
    edited[2] = Message(role="assistant", content="something else entirely")
    reply = backend.generate(edited, GREEDY)
    fresh = make_backend(tiny_dir, reuse_cache=False).generate(edited, GREEDY)
    assert reply.text == fresh.text
    assert 0 < reply.cached_tokens < len(backend.prompt_ids(conversation(2)))


def test_without_reuse_every_turn_runs_the_whole_prompt(tiny_dir: Path) -> None:
    backend = make_backend(tiny_dir, reuse_cache=False)
    backend.generate(conversation(1), GREEDY)
    reply = backend.generate(conversation(2), GREEDY)
    assert reply.cached_tokens == 0
    assert backend.last_prefill_tokens == reply.prompt_tokens


def test_stop_string_and_length_finish(tiny_dir: Path) -> None:
    backend = make_backend(tiny_dir, reuse_cache=False)
    full = backend.generate(conversation(1), GenerationConfig(max_new_tokens=30))
    assert full.finish_reason == "length" and full.completion_tokens == 30
    stop = full.text[5:8]
    cut = backend.generate(conversation(1), GenerationConfig(max_new_tokens=30, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.completion_tokens < 30


def test_a_repeated_line_ends_the_reply(tiny_dir: Path) -> None:
    """The random tiny model's text has no newlines to repeat: a stop on a repeated line is driven
    through a model whose decoded text is fixed, by decoding through a stub tokenizer."""
    backend = make_backend(tiny_dir, reuse_cache=False)
    backend.tokenizer.decode = lambda tokens, skip_special_tokens=True: "go\n" + "same line\n" * len(tokens)
    reply = backend.generate(conversation(1), GenerationConfig(max_new_tokens=30, max_line_repeats=3))
    assert reply.finish_reason == "repetition" and reply.completion_tokens == 3
    assert reply.text == "go\nsame line"


def test_sampling_is_seeded(tiny_dir: Path) -> None:
    backend = make_backend(tiny_dir)
    sampled = GenerationConfig(max_new_tokens=20, temperature=1.5, top_p=0.95, seed=7)
    a = backend.generate(conversation(1), sampled).text
    b = backend.generate(conversation(1), sampled).text
    other = GenerationConfig(max_new_tokens=20, temperature=1.5, top_p=0.95, seed=8)
    c = backend.generate(conversation(1), other).text
    assert a == b
    assert a != c


def test_bfloat16_option(tiny_dir: Path) -> None:
    backend = make_backend(tiny_dir, dtype="bfloat16")
    assert next(backend.model.parameters()).dtype == torch.bfloat16
    assert backend.generate(conversation(1), GREEDY).completion_tokens == 12


def test_peft_adapter_dir_is_applied_on_its_base(tiny_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    # init_lora_weights=False gives a non-zero update, so the adapter really changes the output.
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, lora)
    peft_model.peft_config["default"].base_model_name_or_path = str(tiny_dir)
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = make_backend(tmp_path / "adapter")
    assert isinstance(adapted.model, PeftModel)
    plain = make_backend(tiny_dir)
    config = GenerationConfig(max_new_tokens=16)
    ids = plain.prompt_ids(conversation(1))
    with torch.inference_mode():
        logits_base = plain.model(torch.tensor([ids])).logits[0, -1]
        logits_adapted = adapted.model(torch.tensor([ids])).logits[0, -1]
    assert not torch.allclose(logits_base, logits_adapted)
    assert adapted.generate(conversation(1), config).completion_tokens == 16
