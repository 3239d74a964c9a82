"""Chat templates for training: which one carries the ``{% generation %}`` markers, and which one to ship.

Assistant-only loss needs a template that marks the assistant's tokens. Few models ship one, so we
keep ChatML variants with markers in ``finetune/templates/`` that render the same text as the model's
own template. The template saved with a trained model is the model's own (inference) template: the
markers mean nothing to llama.cpp's or our renderer, and the text is the same.
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


class TemplateError(ValueError):
    """No usable training chat template; the message says what to pass."""


def shipped_template(name: str) -> str:
    """The text of ``finetune/templates/<name>.jinja``."""
    return (importlib.resources.files("finetune") / "templates" / f"{name}.jinja").read_text(encoding="utf-8")


def has_markers(template: str | None) -> bool:
    """Whether ``template`` marks assistant output with ``{% generation %}``."""
    return bool(template) and bool(_MARKER.search(template or ""))


def strip_markers(template: str) -> str:
    """``template`` without its generation markers: renders the same text, in any Jinja engine."""
    return _MARKER.sub("", template)


def training_template(tokenizer: Any, model_type: str, override: Path | None = None) -> str:
    """The template to train with: ``override``, the model's own if it has markers, else ours."""
    if override is not None:
        try:
            text = Path(override).read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"cannot read chat template {override}: {exc.strerror}") from exc
        if not has_markers(text):
            raise TemplateError(f"{override} has no {{% generation %}} markers for assistant-only loss")
        return text
    own = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    if has_markers(own):
        return own  # type: ignore[return-value]
    if model_type == "qwen2":
        return shipped_template("qwen2")
    if own is None or "<|im_start|>" in own:
        if "<|im_start|>" not in tokenizer.get_vocab():
            raise TemplateError("the tokenizer has no <|im_start|> token; set chat_template in the config")
        return shipped_template("chatml")
    raise TemplateError(
        "the model's chat template is not ChatML and has no {% generation %} markers; "
        "set chat_template to a Jinja file with them"
    )


def inference_template(original: str | None, training: str) -> str:
    """The template to save with the trained model: the model's own, else ours without markers."""
    return strip_markers(original) if original else strip_markers(training)
