"""The reference backend on transformers: HF dirs, GGUF via the dequantized cache, PEFT adapters.

A conversation grows by appending, so the backend keeps the KV cache of its last call and the token
ids that cache covers. The next call crops the cache to the longest common token prefix and feeds
only the new tokens: turn N does not re-encode turns 1..N-1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.backends.base import BackendError, GenerationConfig, Reply
from agent.backends.chat_template import common_prefix
from agent.backends.stops import StopScanner
from agent.models import ResolvedModel, hf_dir_for, resolve_model
from agent.records import Message


class TransformersBackend:
    """Generates with a causal LM in-process, reusing the KV cache of the shared prefix across calls."""

    name = "transformers"

    def __init__(
        self,
        model: str | Path | ResolvedModel | None = None,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        reuse_cache: bool = True,
    ):
        import torch

        resolved = model if isinstance(model, ResolvedModel) else resolve_model(model)
        self.model_id = resolved.model_id
        self.device = device
        self.reuse_cache = reuse_cache
        self.model, self.tokenizer = _load(resolved, getattr(torch, dtype), device)
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self._cache: Any = None
        self._cache_ids: list[int] = []
        # The last call's prefill (tokens run, seconds) and decode seconds: tests and benchmarks read them.
        self.last_prefill_tokens = 0
        self.last_prefill_seconds = 0.0
        self.last_decode_seconds = 0.0

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat prompt, ending with the assistant header."""
        text = self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, messages: list[Message], config: GenerationConfig) -> Reply:
        """Reply to ``messages``: prefill only what the cache lacks, then decode token by token."""
        import torch

        start = time.perf_counter()
        ids = self.prompt_ids(messages)
        if not ids:
            raise BackendError("empty prompt")
        with torch.inference_mode():
            cached, logits = self._prefill(ids)
            self.last_prefill_seconds = time.perf_counter() - start
            tokens, finish, scanner = self._decode(ids, logits, config)
        self.last_decode_seconds = time.perf_counter() - start - self.last_prefill_seconds
        text = scanner.text if scanner.stopped else self.tokenizer.decode(tokens, skip_special_tokens=True)
        return Reply(
            text=text,
            prompt_tokens=len(ids),
            completion_tokens=len(tokens),
            cached_tokens=cached,
            seconds=time.perf_counter() - start,
            finish_reason=finish,
        )

    def _prefill(self, ids: list[int]) -> tuple[int, Any]:
        """Run the uncached suffix of ``ids``; returns (tokens reused, logits of the last position)."""
        from transformers import DynamicCache

        keep = 0
        if self.reuse_cache and self._cache is not None:
            # Keep at least one token to run so that we get logits for the next position.
            keep = min(common_prefix(self._cache_ids, ids), len(ids) - 1)
        if keep == 0:
            self._cache = DynamicCache()
        elif (extra := self._cache.get_seq_length() - keep) > 0:
            # transformers 5 crops by a negative count of tokens to drop from the end.
            self._cache.crop(-extra)
        self._cache_ids = list(ids[:keep])
        self.last_prefill_tokens = len(ids) - keep
        return keep, self._forward(ids[keep:])

    def _forward(self, new_ids: list[int]) -> Any:
        import torch

        input_ids = torch.tensor([new_ids], device=self.device)
        out = self.model(input_ids=input_ids, past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        self._cache_ids.extend(new_ids)
        return out.logits[0, -1].float()

    def _decode(
        self, ids: list[int], logits: Any, config: GenerationConfig
    ) -> tuple[list[int], str, StopScanner]:
        import torch

        generator = None
        if config.temperature > 0:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(config.seed if config.seed is not None else int(time.time_ns() % 2**31))
        scanner = StopScanner(config.stop, config.max_line_repeats)
        tokens: list[int] = []
        finish = "length"
        while len(tokens) < config.max_new_tokens:
            token = _pick(logits, config, generator)
            if token in self.eos_ids:
                finish = "stop"
                break
            tokens.append(token)
            if scanner.active and scanner.update(self.tokenizer.decode(tokens, skip_special_tokens=True)):
                finish = "repetition" if scanner.repeated else "stop"
                break
            if len(tokens) < config.max_new_tokens:
                logits = self._forward([token])
        return tokens, finish, scanner

    def reset(self) -> None:
        """Forget the cached conversation (the next call re-encodes its whole prompt)."""
        self._cache, self._cache_ids = None, []


def _pick(logits: Any, config: GenerationConfig, generator: Any) -> int:
    """Greedy when temperature is 0, else temperature + nucleus sampling."""
    import torch

    if config.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / config.temperature, dim=-1)
    if config.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Drop tokens once the mass before them already reaches top_p; the top token always stays.
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= config.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    # Chat models end a turn with <|im_end|> even when the config names another EOS.
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return ids


def _load(resolved: ResolvedModel, dtype: Any, device: str) -> tuple[Any, Any]:
    """Load weights (dequantized GGUF via the cache) and tokenizer; apply a PEFT adapter if given."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = resolved.base if resolved.kind == "adapter" else resolved
    assert base is not None
    hf_dir = hf_dir_for(base)
    try:
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype).to(device)
        # An adapter dir may carry its own tokenizer (with a tuned chat template); else use the base's.
        own = resolved.kind == "adapter" and (resolved.path / "tokenizer_config.json").exists()
        tokenizer = AutoTokenizer.from_pretrained(resolved.path if own else hf_dir)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load model from {hf_dir}: {exc}") from exc
    if resolved.kind == "adapter":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, resolved.path)
    model.eval()
    return model, tokenizer
