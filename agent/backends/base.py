"""The one-method contract every model backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from agent.records import Message


@dataclass
class GenerationConfig:
    """How to sample a reply. ``temperature == 0`` means greedy."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    # End a reply once it ends in this many copies of one line or of a block of 2-3 lines (0 = never;
    # stops.repetition_cut); the reply keeps the first copy and its finish_reason is "repetition".
    max_line_repeats: int = 0


@dataclass
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = "stop"

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


class BackendError(RuntimeError):
    """A system fault of the backend (server down, model missing): the run stops and says why."""


@runtime_checkable
class Backend(Protocol):
    """A model behind one method. A backend whose replies do not depend on the sampling settings (a
    script, the rule-based expert) sets ``fixed_replies = True``, and the loop never redraws from it."""

    name: str
    model_id: str

    def generate(self, messages: list[Message], config: GenerationConfig) -> Reply: ...
