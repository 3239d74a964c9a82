"""Training data: ``{"messages": [...]}`` JSONL files (what ``analyst collect`` writes), and their stats.

The same files load unchanged in trl, axolotl and ms-swift. Stats are measured with the tokenizer and
training template actually used, so "tokens" and "truncated" are what the trainer sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """The training data is missing or malformed; the message names the file and line."""


def data_files(paths: Sequence[Path]) -> list[Path]:
    """The JSONL files named by ``paths``: files as given, directories searched recursively."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob("*.jsonl")))
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"no such file or directory: {path}")
    if not found:
        raise DataError(f"no .jsonl files in {', '.join(str(p) for p in paths)}")
    return found


def _check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    clean = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise DataError(f"{where}: each message needs a role in {ROLES}")
        if not isinstance(message.get("content"), str):
            raise DataError(f"{where}: message content must be a string")
        if "train" in message and not isinstance(message["train"], bool):
            raise DataError(f"{where}: 'train' must be true or false")
        clean.append({"role": message["role"], "content": message["content"]})
        if message.get("train") is False:  # context only: rendered, but no loss on its tokens
            clean[-1]["train"] = False
    if not any(m["role"] == "assistant" and m.get("train", True) for m in clean):
        raise DataError(f"{where}: no assistant message to learn from")
    return clean


def read_examples(files: Iterable[Path]) -> list[dict[str, Any]]:
    """Every conversation in ``files`` as ``{"messages": [...]}``, validated."""
    examples = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{where}: not JSON ({exc.msg})") from exc
                if not isinstance(record, dict) or "messages" not in record:
                    raise DataError(f"{where}: expected an object with 'messages'")
                examples.append({"messages": _check_messages(record["messages"], where)})
    if not examples:
        raise DataError("the training data holds no conversations")
    return examples


@dataclass
class DataStats:
    """What the trainer will see: examples, tokens, tokens that carry loss, and truncation."""

    files: list[str] = field(default_factory=list)
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    dropped: int = field(default=0, metadata={"help": "examples with no trained token left after truncation"})
    max_tokens: int = 0
    mean_tokens: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(examples: list[dict[str, Any]], tokenizer: Any, template: str, max_length: int) -> DataStats:
    """Tokenize each conversation as the trainer will and count tokens, loss tokens and truncation."""
    stats = DataStats(examples=len(examples))
    lengths = []
    for example in examples:
        out = tokenizer.apply_chat_template(
            example["messages"],
            chat_template=template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, mask = out["input_ids"], out["assistant_masks"]
        lengths.append(len(ids))
        if len(ids) > max_length:
            stats.truncated += 1
        kept = sum(mask[:max_length])
        if kept == 0:  # the trainer drops it: nothing to learn in what is left
            stats.dropped += 1
            continue
        stats.tokens += min(len(ids), max_length)
        stats.trained_tokens += kept
    stats.max_tokens = max(lengths)
    stats.mean_tokens = round(sum(lengths) / len(lengths), 1)
    return stats
