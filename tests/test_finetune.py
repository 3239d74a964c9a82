"""Fine-tuning on a tiny random-init Qwen2: LoRA and full steps, the assistant-only mask, merge, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.records import file_sha256
from finetune import train as train_module
from finetune.cli import train_group
from finetune.config import ConfigError, TrainConfig, load_config
from finetune.templates import has_markers, shipped_template, strip_markers, training_template
from finetune.train import TrainError, bf16_fallback, build_trainer, cpu_has_bf16, train
from tests.test_finetune_tiny import CONVERSATION, build_tokenizer, qwen_template, tiny_dir, write_data

__all__ = ["tiny_dir"]  # the module-scoped fixture, shared with test_export


def quick(**changes) -> TrainConfig:
    """Two optimizer steps of one example each: the shape of trl's own trainer tests."""
    settings = {"max_steps": 2, "grad_accum": 1, "max_length": 512, "save_steps": 1, "warmup_ratio": 0.0}
    return load_config(None, {**settings, **changes})


def safetensors_dict(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def logits_of(model, tokenizer):
    import torch

    ids = tokenizer.apply_chat_template(CONVERSATION[:2], add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    with torch.no_grad():
        return model(ids).logits


def test_config_file_then_flags_take_precedence(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("mode: full\nlora_rank: 4\nlearning_rate: 3.0e-5\nlora_targets: [q_proj, v_proj]\n")
    config = load_config(path, {"lora_rank": "8", "epochs": None})
    assert (config.mode, config.lora_rank, config.lora_targets) == ("full", 8, ["q_proj", "v_proj"])
    assert config.resolved_learning_rate() == 3.0e-5
    assert load_config(None, {"mode": "full"}).resolved_learning_rate() == 1e-5
    with pytest.raises(ConfigError, match="unknown training setting 'lora_rnak'"):
        load_config(None, {"lora_rnak": 4})
    with pytest.raises(ConfigError, match="mode must be one of"):
        load_config(None, {"mode": "qlora"})


@pytest.mark.parametrize("messages", [CONVERSATION, CONVERSATION[1:]], ids=["with-system", "no-system"])
def test_our_qwen_template_renders_exactly_like_qwens_own(messages):
    from jinja2 import Environment

    ours = shipped_template("qwen2")
    assert has_markers(ours) and not has_markers(strip_markers(ours))
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    for prompt in (False, True):
        expected = env.from_string(qwen_template()).render(messages=messages, add_generation_prompt=prompt)
        assert env.from_string(strip_markers(ours)).render(
            messages=messages, add_generation_prompt=prompt
        ) == (expected)


def test_only_assistant_tokens_carry_labels_on_a_multi_turn_example(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert not has_markers(tokenizer.chat_template)
    tokenizer.chat_template = training_template(tokenizer, "qwen2")
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    trainer, _ = build_trainer(model, tokenizer, [{"messages": CONVERSATION}], quick(), tmp_path)
    row = trainer.train_dataset[0]
    trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert all(label in (-100, t) for t, label in zip(row["input_ids"], row["labels"], strict=True))
    # Exactly the two assistant replies, each with the <|im_end|> that teaches the model to stop.
    expected = CONVERSATION[2]["content"] + "<|im_end|>" + CONVERSATION[4]["content"] + "<|im_end|>"
    assert tokenizer.decode(trained) == expected
    assert 0 < len(trained) < len(row["input_ids"]) / 2


def test_a_reply_marked_not_to_train_is_context_only(tiny_dir, tmp_path):
    from jinja2 import Environment
    from transformers import AutoModelForCausalLM, AutoTokenizer

    failed = [dict(m) for m in CONVERSATION]
    failed[2]["train"] = False  # the first reply, say a cell that failed on purpose
    for name in ("qwen2", "chatml"):  # rendered exactly as without the mark
        env = Environment(trim_blocks=True, lstrip_blocks=True)
        template = env.from_string(strip_markers(shipped_template(name)))
        assert template.render(messages=failed) == template.render(messages=CONVERSATION)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.chat_template = training_template(tokenizer, "qwen2")
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    trainer, _ = build_trainer(model, tokenizer, [{"messages": failed}], quick(), tmp_path)
    row = trainer.train_dataset[0]
    trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert tokenizer.decode(trained) == CONVERSATION[4]["content"] + "<|im_end|>"


def test_two_lora_steps_log_a_loss_change_the_adapter_and_load_for_inference(tiny_dir, tmp_path):
    data = write_data(tmp_path / "data" / "train.jsonl")
    out = tmp_path / "lora"
    result = train([data.parent], str(tiny_dir), out, quick(lora_rank=4, lora_alpha=8))
    losses = [entry["loss"] for entry in result.summary["log"]]
    assert len(losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert result.summary["tokens_per_second"] > 0 and result.summary["peak_rss_mb"] > 0
    weights = safetensors_dict(out / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().max() > 0 for t in lora_b)  # B starts at zero: nonzero means it trained
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_dir.resolve()) and adapter["r"] == 4
    assert not has_markers((out / "chat_template.jinja").read_text())  # inference template, no markers
    stats = json.loads((out / "data_stats.json").read_text())
    assert (
        stats["examples"] == 4 and stats["truncated"] == 0 and 0 < stats["trained_tokens"] < stats["tokens"]
    )
    assert json.loads((out / "train_config.json").read_text())["config"]["learning_rate"] == 2e-4


CPUINFO = {
    "xeon-amx": "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n",
    "epyc-avx2": "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\nprocessor\t: 1\nflags\t\t: fpu avx2\n",
    "arm-bf16": "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n",
    "arm-plain": "processor\t: 0\nFeatures\t: fp asimd\n",
    "no-flags": "processor\t: 0\n",
}


@pytest.mark.parametrize(
    "cpu, expected",
    [("xeon-amx", True), ("epyc-avx2", False), ("arm-bf16", True), ("arm-plain", False), ("no-flags", None)],
)
def test_bf16_instructions_are_read_from_cpuinfo(tmp_path, cpu, expected):
    (tmp_path / "cpuinfo").write_text(CPUINFO[cpu])
    assert cpu_has_bf16(tmp_path / "cpuinfo") is expected
    assert cpu_has_bf16(tmp_path / "missing") is None  # not Linux: nothing to go by


def test_bf16_falls_back_to_fp32_only_on_a_cpu_known_to_lack_it():
    asked = quick(bf16=True)
    config, note = bf16_fallback(asked, cuda=False, has_bf16=False)
    assert config.bf16 is False and "no bf16 instructions" in note
    for cuda, has in [(True, False), (False, True), (False, None)]:
        assert bf16_fallback(asked, cuda=cuda, has_bf16=has) == (asked, None)
    plain = quick(bf16=False)
    assert bf16_fallback(plain, cuda=False, has_bf16=False) == (plain, None)


def test_training_on_a_cpu_without_bf16_runs_in_fp32_and_says_so(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_module, "cpu_has_bf16", lambda: False)
    data = write_data(tmp_path / "train.jsonl")
    train([data], str(tiny_dir), tmp_path / "out", quick(bf16=True, max_steps=1, lora_rank=4, lora_alpha=8))
    record = json.loads((tmp_path / "out" / "train_config.json").read_text())
    assert record["config"]["bf16"] is False and "no bf16 instructions" in record["bf16_fallback"]
    assert "note: bf16 was asked for" in capsys.readouterr().err


def test_two_full_steps_change_the_weights(tiny_dir, tmp_path):
    data = write_data(tmp_path / "train.jsonl")
    out = tmp_path / "full"
    result = train([data], str(tiny_dir), out, quick(mode="full", learning_rate=1e-3))
    assert len(result.summary["log"]) == 2
    before = safetensors_dict(tiny_dir / "model.safetensors")
    after = safetensors_dict(out / "model.safetensors")
    assert before.keys() == after.keys()
    changed = [name for name in before if not before[name].equal(after[name])]
    assert "model.layers.0.self_attn.q_proj.weight" in changed and len(changed) > len(before) // 2


def test_adapter_loads_merges_and_reloads_with_identical_logits(tiny_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "lora"
    train([write_data(tmp_path / "train.jsonl")], str(tiny_dir), out, quick(learning_rate=1e-2))
    tokenizer = AutoTokenizer.from_pretrained(out)
    base_logits = logits_of(AutoModelForCausalLM.from_pretrained(tiny_dir), tokenizer)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), out).eval()
    adapter_logits = logits_of(adapted, tokenizer)
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4)  # the adapter does something

    result = CliRunner().invoke(train_group, ["merge", str(out), "--out", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in name for name in safetensors_dict(tmp_path / "merged/model.safetensors"))
    merged_logits = logits_of(merged, tokenizer)
    # Folding B@A into W reorders float sums: equal up to fp32 rounding, far below what training moved.
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)
    drift = (merged_logits - adapter_logits).abs().max()
    assert (adapter_logits - base_logits).abs().max() > 1000 * drift
    again = CliRunner().invoke(train_group, ["merge", str(out), "--out", str(tmp_path / "merged")])
    assert again.exit_code == 1 and "not empty" in again.output


def test_training_can_start_from_an_existing_adapter(tiny_dir, tmp_path):
    import torch

    data = write_data(tmp_path / "train.jsonl")
    first = tmp_path / "first"
    train([data], str(tiny_dir), first, quick(lora_rank=4, lora_alpha=8, learning_rate=1e-2))
    start = safetensors_dict(first / "adapter_model.safetensors")
    # A zero learning rate keeps the weights where they started: the copy proves where that was.
    kept = tmp_path / "kept"
    train([data], str(tiny_dir), kept, quick(init_adapter=str(first), learning_rate=0.0))
    assert json.loads((kept / "adapter_config.json").read_text())["r"] == 4  # the adapter's own rank
    # train_config.json names what the run started from, with the targets that really trained
    record = json.loads((kept / "train_config.json").read_text())
    targets = sorted(json.loads((first / "adapter_config.json").read_text())["target_modules"])
    assert record["init_adapter"]["target_modules"] == targets == record["config"]["lora_targets"]
    assert record["init_adapter"]["sha256"] == file_sha256(first / "adapter_model.safetensors")
    after = safetensors_dict(kept / "adapter_model.safetensors")
    assert after.keys() == start.keys() and all(torch.equal(after[k], start[k]) for k in start)
    moved = tmp_path / "moved"
    result = train([data], str(tiny_dir), moved, quick(init_adapter=str(first), learning_rate=1e-2))
    assert result.summary["log"][0]["loss"] < 0.99 * train_loss_from_scratch(tiny_dir, data, tmp_path)
    with pytest.raises(TrainError, match="cannot start from adapter"):
        train([data], str(tiny_dir), tmp_path / "bad", quick(init_adapter=str(tmp_path / "nope")))


def train_loss_from_scratch(tiny_dir, data, tmp_path) -> float:
    result = train([data], str(tiny_dir), tmp_path / "scratch", quick(lora_rank=4, lora_alpha=8))
    return result.summary["log"][0]["loss"]


def test_resume_continues_from_the_last_checkpoint(tiny_dir, tmp_path):
    data = write_data(tmp_path / "train.jsonl")
    out = tmp_path / "run"
    train([data], str(tiny_dir), out, quick())
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    result = train([data], str(tiny_dir), out, quick(max_steps=3), resume=True)
    assert [entry["step"] for entry in result.summary["log"]] == [3]  # steps 1-2 were not redone
    assert (out / "checkpoints" / "checkpoint-3").is_dir()


def test_a_run_whose_gradients_turn_nan_stops_and_writes_no_adapter(tiny_dir, tmp_path):
    # An absurd learning rate drives the weights to inf after the first update, so the next
    # gradient norm is NaN, as a batch-4 run did on a GPU (docs/TRAINING.md, v8). Left running,
    # trl logs a loss of 0.0 for every later step and the adapter is NaN throughout.
    data = write_data(tmp_path / "train.jsonl")
    out = tmp_path / "nan"
    argv = [str(data), "--base", str(tiny_dir), "--out", str(out), "--max-steps", "6", "--lr", "1e30"]
    settings = ["--set", "grad_accum=1", "--set", "warmup_ratio=0", "--set", "save_steps=1"]
    result = CliRunner().invoke(train_group, [*argv, *settings])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "training diverged: the grad norm is nan at step 2" in result.output
    assert not (out / "adapter_model.safetensors").exists()
    log = json.loads((out / "train_log.json").read_text())
    assert [entry["step"] for entry in log if "grad_norm" in entry] == [1, 2]  # stopped where it broke
    # step 2 applied a NaN update: no checkpoint of it, so --resume cannot continue from NaN weights
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1"]


def test_cli_trains_and_turns_user_mistakes_into_one_line_errors(tiny_dir, tmp_path):
    data = write_data(tmp_path / "train.jsonl", copies=2)
    out = tmp_path / "cli"
    args = [
        str(data),
        "--base",
        str(tiny_dir),
        "--out",
        str(out),
        "--max-steps",
        "1",
        "--set",
        "grad_accum=1",
    ]
    result = CliRunner().invoke(train_group, [*args, "--set", "lora_rank=2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "adapter written to" in result.output and (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "train_config.json").read_text())["config"]["lora_rank"] == 2

    again = CliRunner().invoke(train_group, args)
    assert again.exit_code == 1 and "already holds a training run" in again.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    for argv, message in [
        ([str(bad), "--base", str(tiny_dir), "--out", str(tmp_path / "x")], "no assistant message"),
        ([str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")], "no such file"),
        ([str(data), "--base", str(tmp_path / "nope"), "--out", str(tmp_path / "x")], "no such model"),
        ([str(data), "--out", str(tmp_path / "x"), "--resume"], "nothing to resume"),
    ]:
        failed = CliRunner().invoke(train_group, argv)
        assert failed.exit_code == 1 and message in failed.output and "Traceback" not in failed.output


def test_tokenizer_without_chatml_needs_an_explicit_template():
    from finetune.templates import TemplateError

    tokenizer = build_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    with pytest.raises(TemplateError, match="not ChatML"):
        training_template(tokenizer, "llama")
    assert has_markers(training_template(build_tokenizer(), "llama"))  # ChatML: ours


def test_timing_conversations_reach_the_requested_length_and_end_with_a_report():
    import random

    from finetune.speed import conversation

    tokenizer = build_tokenizer()
    example = conversation(tokenizer, 300, random.Random(0))
    messages = example["messages"]
    assert [m["role"] for m in messages[:3]] == ["system", "user", "assistant"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"].startswith("## Final Report")
    length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
    assert 300 <= length < 600


def test_train_marks_are_read_and_checked(tmp_path):
    from finetune.data import DataError, read_examples

    path = tmp_path / "data.jsonl"
    marked = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "train": False}]
    path.write_text(
        json.dumps(
            {"messages": [*marked, {"role": "user", "content": "o"}, {"role": "assistant", "content": "b"}]}
        )
        + "\n"
    )
    messages = read_examples([path])[0]["messages"]
    assert messages[1] == {"role": "assistant", "content": "a", "train": False} and "train" not in messages[3]
    path.write_text(json.dumps({"messages": marked}) + "\n")
    with pytest.raises(DataError, match="no assistant message to learn from"):
        read_examples([path])
    path.write_text(json.dumps({"messages": [{"role": "assistant", "content": "a", "train": "no"}]}) + "\n")
    with pytest.raises(DataError, match="'train' must be true or false"):
        read_examples([path])
