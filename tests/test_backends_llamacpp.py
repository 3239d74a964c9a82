"""The llama.cpp backend with SmolLM2-135M (slow): generation, stop strings, KV prefix reuse; the factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.backends.base import Backend, BackendError, GenerationConfig
from agent.backends.chat_template import CHATML_TEMPLATE, common_prefix, render_chat
from agent.backends.factory import auto_kind, create_backend
from agent.backends.scripted import ScriptedBackend
from agent.backends.stops import StopScanner, repetition_cut
from agent.models import ModelError, smollm2_gguf
from agent.records import Message

COUNT = [
    Message(role="system", content="You are a helpful assistant."),
    Message(role="user", content="Count from 1 to 30."),
]


def test_chatml_render_and_common_prefix() -> None:
    text = render_chat(COUNT)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nCount from 1 to 30.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_chat(COUNT, CHATML_TEMPLATE, add_generation_prompt=False).endswith("30.<|im_end|>\n")
    assert common_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_stop_scanner_finds_a_stop_split_across_tokens() -> None:
    scanner = StopScanner(["```\n", "Observation:"])
    assert not scanner.update("print(1)\n`")
    assert not scanner.update("print(1)\n``")
    assert scanner.update("print(1)\n```\nmore")
    assert scanner.text == "print(1)\n"


def test_repeated_lines_end_a_reply_after_the_first_copy() -> None:
    looping = "## Final Report\n- rows: 288\n" + "- The numbers are back.\n\n" * 3
    assert repetition_cut(looping, 4) is None  # three copies: not yet
    looping += "- The numbers are back.\n"
    cut = repetition_cut(looping, 4)
    assert looping[:cut] == "## Final Report\n- rows: 288\n- The numbers are back."
    assert repetition_cut(looping + "- The numbers are", 4) == cut  # an unfinished line is not counted
    assert repetition_cut(looping, 0) is None

    # Two or three lines in turn are a loop too (seen in a tuned model's report): cut after the first pair.
    pair = (
        "## Final Report\n- Unit_price is above the mean (40.41).\n- Unit_price is above the mean (46.34).\n"
    )
    head = "## Final Report\n- Unit_price is above the mean (40.41).\n- Unit_price is above the mean (46.34)."
    assert repetition_cut(pair, 3) is None
    alternating = (
        pair + "- Unit_price is above the mean (40.41).\n- Unit_price is above the mean (46.34).\n" * 2
    )
    assert alternating[: repetition_cut(alternating, 3)] == head
    assert repetition_cut("a\nb\na\nb\na\n", 3) is None  # two and a half copies
    assert repetition_cut("x\n" + "a\nb\nc\n" * 3, 3) == len("x\na\nb\nc")
    assert repetition_cut("a\nb\nc\nd\n" * 3, 3) is None  # blocks of four lines are left alone

    scanner = StopScanner(["```\n"], max_line_repeats=3)
    text = ""
    for piece in ["x = 1\n", "print(x)\n", "print(x)\n", "print(", "x)\n", "print(x)\n"]:
        text += piece
        if scanner.update(text):
            break
    assert scanner.repeated and scanner.stopped and scanner.text == "x = 1\nprint(x)"
    assert text == "x = 1\nprint(x)\nprint(x)\nprint(x)\n"  # it stopped at the third copy


def test_factory_kinds_and_errors(tmp_path: Path) -> None:
    scripted = create_backend("scripted", replies=["hi"])
    assert isinstance(scripted, ScriptedBackend) and isinstance(scripted, Backend)
    replies = tmp_path / "replies.json"
    replies.write_text('["one", "two"]')
    from_file = create_backend("scripted", str(replies))
    assert isinstance(from_file, ScriptedBackend) and from_file.queue == ["one", "two"]
    with pytest.raises(BackendError, match="unknown backend 'vllm'"):
        create_backend("vllm")
    with pytest.raises(ModelError, match="no such model"):
        create_backend("auto", "/nonexistent/model.gguf")
    assert auto_kind("hf") == "transformers" and auto_kind("adapter") == "transformers"
    with pytest.raises(BackendError, match="--base-url applies to the openai backend, not transformers"):
        create_backend("transformers", "base", base_url="http://127.0.0.1:1/v1")


def test_auto_with_a_base_url_is_the_openai_backend() -> None:
    from agent.backends.openai_backend import OpenAIBackend

    backend = create_backend("auto", "default", base_url="http://127.0.0.1:9/v1")
    assert isinstance(backend, OpenAIBackend) and backend.base_url == "http://127.0.0.1:9/v1"
    assert backend.model_id == "server-default"  # asks the server for its model on first use


@pytest.fixture(scope="module")
def smol():
    pytest.importorskip("llama_cpp")
    from agent.backends.llamacpp_backend import LlamaCppBackend

    return LlamaCppBackend(str(smollm2_gguf()), n_ctx=2048)


def test_auto_picks_llamacpp_for_gguf() -> None:
    pytest.importorskip("llama_cpp")
    assert auto_kind("gguf") == "llamacpp"


def test_llamacpp_refuses_non_gguf(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from agent.backends.llamacpp_backend import LlamaCppBackend

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="needs a GGUF file"):
        LlamaCppBackend(str(tmp_path))


@pytest.mark.slow
def test_generates_and_stops_on_strings(smol) -> None:
    assert smol.template and "im_start" in smol.template  # taken from the GGUF's metadata
    full = smol.generate(COUNT, GenerationConfig(max_new_tokens=60))
    assert "5" in full.text and full.completion_tokens > 5
    assert full.prompt_tokens == len(smol.prompt_ids(COUNT))
    cut = smol.generate(COUNT, GenerationConfig(max_new_tokens=60, stop=["5"]))
    assert cut.finish_reason == "stop" and "5" not in cut.text
    assert full.text.startswith(cut.text) and cut.completion_tokens < full.completion_tokens
    short = smol.generate(COUNT, GenerationConfig(max_new_tokens=3))
    assert short.completion_tokens == 3 and short.finish_reason == "length"


@pytest.mark.slow
def test_second_turn_reuses_the_prefix_and_matches_a_fresh_run(smol) -> None:
    greedy = GenerationConfig(max_new_tokens=24)
    smol.reset()
    first = smol.generate(COUNT, greedy)
    assert first.cached_tokens == 0 and smol.last_prefill_tokens == first.prompt_tokens
    turn2 = COUNT + [
        Message(role="assistant", content=first.text),
        Message(role="user", content="Now in French."),
    ]
    second = smol.generate(turn2, greedy)
    assert second.cached_tokens >= first.prompt_tokens
    assert smol.last_prefill_tokens == second.prompt_tokens - second.cached_tokens
    assert smol.last_prefill_tokens < 40
    smol.reset()
    fresh = smol.generate(turn2, greedy)
    assert fresh.cached_tokens == 0
    assert fresh.text == second.text


@pytest.mark.slow
def test_sampling_follows_the_seed(smol) -> None:
    config = GenerationConfig(max_new_tokens=20, temperature=1.2, seed=11)
    a = smol.generate(COUNT, config).text
    b = smol.generate(COUNT, config).text
    c = smol.generate(COUNT, GenerationConfig(max_new_tokens=20, temperature=1.2, seed=12)).text
    assert a == b and a != c


@pytest.mark.slow
def test_prompt_longer_than_the_context_is_a_backend_error(smol) -> None:
    huge = [Message(role="user", content="data " * 3000)]
    with pytest.raises(BackendError, match="does not fit the context window n_ctx=2048"):
        smol.generate(huge, GenerationConfig())


@pytest.mark.slow
def test_the_default_context_stops_at_what_the_model_was_trained_on() -> None:
    pytest.importorskip("llama_cpp")
    from agent.backends.llamacpp_backend import DEFAULT_N_CTX, LlamaCppBackend, trained_context

    backend = LlamaCppBackend(str(smollm2_gguf()))  # SmolLM2 was trained with 8,192 tokens of context
    assert trained_context(backend.llm) == 8192 < DEFAULT_N_CTX
    assert backend.n_ctx == backend.llm.n_ctx() == 8192


def test_default_threads_env_and_passive_openmp(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.backends import llamacpp_backend

    monkeypatch.setattr(llamacpp_backend, "physical_cores", lambda: 4)
    monkeypatch.delenv("ANALYST_THREADS", raising=False)
    assert llamacpp_backend.default_threads() == 4
    monkeypatch.setenv("ANALYST_THREADS", "2")
    assert llamacpp_backend.default_threads() == 2
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    llamacpp_backend._passive_openmp()
    assert llamacpp_backend.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's explicit choice wins
    llamacpp_backend._passive_openmp()
    assert llamacpp_backend.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
