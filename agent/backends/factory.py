"""Pick and build a backend from a kind and a model spec.

``auto`` picks the OpenAI-compatible backend when a ``base_url`` is given, else llama.cpp for GGUF models (the default model included): on CPU it decodes several
times faster than transformers. HF dirs and PEFT adapter dirs go to transformers, because
llama.cpp only applies adapters converted to GGUF (pass ``lora_path=`` to the llamacpp backend for
those, or export a merged model to GGUF). If llama-cpp-python is not installed, ``auto`` falls back
to transformers.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from agent.backends.base import Backend, BackendError
from agent.models import resolve_model

KINDS = ("auto", "llamacpp", "transformers", "openai", "scripted")


def create_backend(kind: str = "auto", model: str | None = None, **opts: Any) -> Backend:
    """Build a backend: ``auto``, ``llamacpp``, ``transformers``, ``openai`` or ``scripted``."""
    if kind not in KINDS:
        raise BackendError(f"unknown backend {kind!r} (choose from {', '.join(KINDS)})")
    if kind == "scripted":
        from agent.backends.scripted import ScriptedBackend, load_script

        # In code, replies come as an option; from the CLI, --model names a file of replies.
        return ScriptedBackend(**opts) if opts else load_script(model or "")
    if kind == "openai" or (kind == "auto" and opts.get("base_url")):
        from agent.backends.openai_backend import OpenAIBackend

        # "default" means the model the server serves; the server is asked for its name.
        return OpenAIBackend(model=None if model in (None, "default") else model, **opts)
    if opts.get("base_url"):
        raise BackendError(f"--base-url applies to the openai backend, not {kind}")
    opts.pop("base_url", None)
    resolved = resolve_model(model)
    if kind == "auto":
        kind = auto_kind(resolved.kind)
    if kind == "llamacpp":
        from agent.backends.llamacpp_backend import LlamaCppBackend as backend_class
    else:
        from agent.backends.transformers_backend import TransformersBackend as backend_class
    try:
        return backend_class(resolved, **opts)
    except TypeError as exc:  # an option this backend does not take
        raise BackendError(f"backend {kind}: {exc}") from exc


def auto_kind(model_kind: str) -> str:
    """The backend ``auto`` uses for a resolved model of this kind."""
    if model_kind == "gguf" and importlib.util.find_spec("llama_cpp") is not None:
        return "llamacpp"
    return "transformers"
