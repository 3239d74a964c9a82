"""Our training templates against the real models' own templates, and one real LoRA step from a GGUF."""

from __future__ import annotations

import json

import pytest
from jinja2 import Environment

from finetune.templates import shipped_template, strip_markers
from tests.test_finetune_tiny import CONVERSATION, write_data

pytestmark = pytest.mark.slow


def gguf_template(path) -> str:
    from gguf import GGUFReader

    return GGUFReader(str(path)).fields["tokenizer.chat_template"].contents()


def render(template: str, messages: list[dict], prompt: bool) -> str:
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=prompt)


@pytest.mark.parametrize(
    ("model", "ours", "conversations"),
    [
        ("default", "qwen2", [CONVERSATION, CONVERSATION[1:]]),
        ("smollm2", "chatml", [CONVERSATION]),  # no default system prompt in ours: ours always has one
    ],
)
def test_our_template_renders_like_the_models_own(model, ours, conversations):
    from agent.models import default_gguf, smollm2_gguf

    own = gguf_template(default_gguf() if model == "default" else smollm2_gguf())
    for messages in conversations:
        for prompt in (False, True):
            assert render(strip_markers(shipped_template(ours)), messages, prompt) == render(
                own, messages, prompt
            )


def test_one_lora_step_on_smollm2_from_its_gguf(tmp_path):
    from agent.models import resolve_model, smollm2_gguf
    from finetune.config import load_config
    from finetune.train import train

    data = write_data(tmp_path / "train.jsonl", copies=2)
    config = load_config(None, {"max_steps": 1, "grad_accum": 1, "max_length": 256, "lora_rank": 4})
    result = train([data], str(smollm2_gguf()), tmp_path / "lora", config)
    assert result.summary["final_loss"] > 0 and result.stats.trained_tokens > 0
    adapter = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(smollm2_gguf().resolve())
    resolved = resolve_model(tmp_path / "lora")  # what `analyst run --model DIR` does first
    assert resolved.kind == "adapter" and resolved.base is not None and resolved.base.kind == "gguf"
