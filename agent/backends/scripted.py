"""A backend that replies from a queue and records what it was sent: the fake model for tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent.backends.base import BackendError, GenerationConfig, Reply
from agent.records import Message

ReplyFn = Callable[[list[Message]], str]


class ScriptedBackend:
    """Pops queued replies in order; a queued callable computes its reply from the messages."""

    name = "scripted"
    fixed_replies = True  # the next reply is the script's, however it is asked: the loop never redraws

    def __init__(self, replies: Iterable[str | ReplyFn] = (), model_id: str = "scripted"):
        self.model_id = model_id
        self.queue: list[str | ReplyFn] = list(replies)
        self.calls: list[list[Message]] = []

    def enqueue(self, *replies: str | ReplyFn) -> None:
        self.queue.extend(replies)

    def generate(self, messages: list[Message], config: GenerationConfig) -> Reply:
        self.calls.append([m.model_copy() for m in messages])
        if not self.queue:
            raise BackendError("scripted backend has no replies left")
        item = self.queue.pop(0)
        text = item(messages) if callable(item) else item
        for stop in config.stop:
            if stop in text:
                text = text[: text.index(stop)]
        prompt = sum(len(m.content.split()) for m in messages)
        return Reply(text=text, prompt_tokens=prompt, completion_tokens=len(text.split()), seconds=0.0)


def load_script(path: str) -> ScriptedBackend:
    """A scripted backend from a JSON list of replies, or from a trajectory whose replies it replays."""
    import json
    from pathlib import Path

    from agent.records import read_trajectory

    source = Path(path)
    if not source.is_file():
        raise BackendError(
            f"scripted backend needs --model FILE (a JSON list of replies or a trajectory): {path}"
        )
    if source.suffix == ".jsonl":
        replies = [step.model_text for step in read_trajectory(source).steps]
    else:
        replies = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise BackendError(f"{path}: expected a JSON list of reply strings")
    return ScriptedBackend(replies, model_id=f"scripted:{source.name}")
