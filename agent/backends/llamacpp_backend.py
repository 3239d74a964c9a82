"""The fast CPU backend on llama-cpp-python: GGUF weights, the conversation's KV state kept across turns.

We render the chat prompt ourselves (the GGUF's Jinja template, or ChatML) and hand llama.cpp token
ids, not text: ``Llama.generate`` then keeps the longest common token prefix of the new prompt and
what its KV cache holds, and only evaluates the rest. An agent's conversation grows by appending, so
turn N costs the new observation plus the reply, not the whole history.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from agent.backends.base import BackendError, GenerationConfig, Reply
from agent.backends.chat_template import common_prefix, render_chat
from agent.backends.stops import StopScanner
from agent.models import ModelError, ResolvedModel, resolve_model
from agent.records import Message


def physical_cores() -> int:
    """Physical cores we may run on: llama.cpp decode slows down on hyper-threads."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:
        physical = usable
    return max(1, min(usable, physical))


def default_threads() -> int:
    """``$ANALYST_THREADS``, else every physical core.

    Under load, ggml's OpenMP threads used to spin at a barrier after every op, so one thread
    descheduled by a busy neighbour stalled the rest (on 2 busy cores: 0.17 tok/s with 2 threads,
    1.4 with 1). ``OMP_WAIT_POLICY=PASSIVE`` (set before llama.cpp loads, see ``_passive_openmp``)
    makes waiting threads sleep instead: 3.9 tok/s with 2 threads on the same busy machine.
    """
    if env := os.environ.get("ANALYST_THREADS"):
        return max(1, int(env))
    return physical_cores()


def _passive_openmp() -> None:
    """Make OpenMP threads sleep while they wait (read once, when libgomp starts), unless the user chose."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# Room for a whole run at the default limits: 12 turns of a 512-token reply and an observation of up to
# 4,000 characters (about 1,300 tokens of numbers) is about 22k tokens at worst, and the runs of the
# held-out eval reached 10.3k (one overflowed the former 8,192). The KV cache of 16,384 tokens costs the
# 0.5B model about 100 MB more than 8,192.
DEFAULT_N_CTX = 16384


def trained_context(llm) -> int:
    """The context length the GGUF says the model was trained with (0 if it does not say)."""
    arch = llm.metadata.get("general.architecture", "")
    try:
        return int(llm.metadata.get(f"{arch}.context_length", 0))
    except ValueError:
        return 0


class LlamaCppBackend:
    """Generates with llama.cpp in-process; each call only evaluates tokens its KV cache lacks."""

    name = "llamacpp"

    def __init__(
        self,
        model: str | Path | ResolvedModel | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        chat_template: str | None = None,
        lora_path: str | None = None,
        verbose: bool = False,
    ):
        resolved = model if isinstance(model, ResolvedModel) else resolve_model(model)
        if resolved.kind != "gguf":
            raise ModelError(
                f"the llamacpp backend needs a GGUF file, not {resolved.kind} {resolved.path}; "
                "export it with `analyst train export` or use --backend transformers"
            )
        _passive_openmp()
        from llama_cpp import Llama

        threads = n_threads or default_threads()
        self.n_threads = threads

        def load(context: int) -> Llama:
            try:
                return Llama(
                    model_path=str(resolved.path),
                    n_ctx=context,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_batch=n_batch,
                    lora_path=lora_path,
                    verbose=verbose,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"llama.cpp cannot load {resolved.path.name}: {exc}") from exc

        self.llm = load(n_ctx or DEFAULT_N_CTX)
        trained = trained_context(self.llm)
        if n_ctx is None and 0 < trained < DEFAULT_N_CTX:
            self.llm.close()
            self.llm = load(trained)  # not past what the model was trained on (SmolLM2: 8,192)
        self.model_id = resolved.model_id
        self.n_ctx = self.llm.n_ctx()
        self.template = chat_template or self.llm.metadata.get("tokenizer.chat_template")
        self._bos = _token_text(self.llm, self.llm.token_bos())
        self._eos = _token_text(self.llm, self.llm.token_eos())
        # Timing of the last call, split as benchmarks need it.
        self.last_prefill_tokens = 0
        self.last_prefill_seconds = 0.0
        self.last_decode_seconds = 0.0

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """Token ids of the rendered chat prompt (special tokens parsed, BOS added once if the model wants it)."""
        try:
            text = render_chat(messages, self.template, bos_token=self._bos, eos_token=self._eos)
        except Exception as exc:  # a template's raise_exception or a Jinja error: the model's fault
            raise BackendError(f"chat template of {self.model_id} failed: {exc}") from exc
        add_bos = not (self._bos and text.startswith(self._bos))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def generate(self, messages: list[Message], config: GenerationConfig) -> Reply:
        """Reply to ``messages``, reusing the KV cache for the prompt prefix it already holds."""
        start = time.perf_counter()
        ids = self.prompt_ids(messages)
        room = self.n_ctx - len(ids)
        if room <= 0:
            raise BackendError(
                f"prompt of {len(ids)} tokens does not fit the context window n_ctx={self.n_ctx}"
            )
        cached = self._cached_prefix(ids)
        self.last_prefill_tokens = len(ids) - cached
        self.llm.set_seed(config.seed if config.seed is not None else random.randrange(2**31))
        tokens, finish, text = self._decode(ids, config, min(config.max_new_tokens, room), start)
        return Reply(
            text=text,
            prompt_tokens=len(ids),
            completion_tokens=len(tokens),
            cached_tokens=cached,
            seconds=time.perf_counter() - start,
            finish_reason=finish,
        )

    def _cached_prefix(self, ids: list[int]) -> int:
        """How many prompt tokens llama.cpp will take from its KV cache (mirrors ``Llama.generate``)."""
        n = self.llm.n_tokens
        if n == 0:
            return 0
        common = common_prefix(list(self.llm._input_ids), ids)
        if common == len(ids):
            return common if n == len(ids) else common - 1
        return common

    def _decode(
        self, ids: list[int], config: GenerationConfig, limit: int, start: float
    ) -> tuple[list[int], str, str]:
        import llama_cpp

        vocab = self.llm._model.vocab
        scanner = StopScanner(config.stop, config.max_line_repeats)
        sampling: dict[str, Any] = {
            "temp": config.temperature,
            "top_p": config.top_p,
            "top_k": 0,
            "min_p": 0.0,
        }
        tokens: list[int] = []
        raw = b""
        finish = "length"
        stream = self.llm.generate(ids, repeat_penalty=1.0, reset=True, **sampling)
        first_at = None
        try:
            for token in stream:
                if first_at is None:
                    first_at = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                tokens.append(token)
                raw += self.llm.detokenize([token])
                if scanner.active and scanner.update(raw.decode("utf-8", errors="ignore")):
                    finish = "repetition" if scanner.repeated else "stop"
                    break
                if len(tokens) >= limit:
                    break
        finally:
            stream.close()
        end = time.perf_counter()
        self.last_prefill_seconds = (first_at or end) - start
        self.last_decode_seconds = end - (first_at or end)
        text = scanner.text if scanner.stopped else raw.decode("utf-8", errors="replace")
        return tokens, finish, text

    def reset(self) -> None:
        """Forget the cached conversation."""
        self.llm.reset()


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")
