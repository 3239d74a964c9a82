"""What collect writes: ``train.jsonl`` (kept conversations) and ``stats.json`` (what was kept,
what was dropped and why, turns, tokens).

Tokens are counted with the default model's own tokenizer (Qwen2.5, ChatML rendering) when its
``tokenizer.json`` is already in the model cache; otherwise as characters / 4, and stats.json says
which method was used.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetune.collect import CollectConfig, Sample, config_dict


def default_tokenizer_file() -> Path | None:
    """``tokenizer.json`` of the default model if the model cache already holds it (never builds it)."""
    from agent.models import DEFAULT_FILENAME, DEFAULT_SHA256, cache_dir

    path = cache_dir() / "hf" / f"{Path(DEFAULT_FILENAME).stem}-{DEFAULT_SHA256[:16]}" / "tokenizer.json"
    return path if path.exists() else None


def token_counter() -> tuple[Callable[[list[dict[str, str]]], int], str]:
    """A function counting a conversation's tokens, and the name of the method."""
    path = default_tokenizer_file()
    if path is not None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))

        def count(messages: list[dict[str, str]]) -> int:
            text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            return len(tokenizer.encode(text, add_special_tokens=False).ids)

        return count, "Qwen2.5 tokenizer of the default model, ChatML rendering"

    return (
        lambda messages: sum(len(m["content"]) for m in messages) // 4
    ), "characters / 4 (tokenizer not cached)"


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"total": 0, "mean": 0, "min": 0, "max": 0}
    return {
        "total": sum(values),
        "mean": round(sum(values) / len(values), 1),
        "min": min(values),
        "max": max(values),
    }


def write_outputs(
    config: CollectConfig, prepared: list[Any], samples: list[Sample], seconds: float
) -> dict[str, Any]:
    """Write train.jsonl and stats.json into ``config.out``; return the stats."""
    count, method = token_counter()
    kept = [s for s in samples if s.kept]
    with open(config.out / "train.jsonl", "w", encoding="utf-8") as handle:
        for sample in kept:
            sample.tokens = count(sample.messages)
            handle.write(json.dumps({"messages": sample.messages}, ensure_ascii=False) + "\n")
    stats = build_stats(config, prepared, samples, seconds)
    stats["tokens"] = {"method": method, **_summary([s.tokens for s in kept])}
    (config.out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return stats


def build_stats(
    config: CollectConfig, prepared: list[Any], samples: list[Sample], seconds: float
) -> dict[str, Any]:
    """Counts per verdict and per task, turns of the kept runs, and one line per run."""
    kept = [s for s in samples if s.kept]
    closed = [p.task.id for p in prepared if p.task.kind == "closed"]
    opened = [p.task.id for p in prepared if p.task.kind == "open"]
    solved = {s.task_id for s in kept}
    return {
        "config": config_dict(config),
        "tasks": {"total": len(prepared), "closed": len(closed), "open": len(opened)},
        "runs": len(samples),
        "kept": len(kept),
        "dropped": dict(sorted(Counter(s.verdict for s in samples if not s.kept).items())),
        "closed_tasks_solved": sum(t in solved for t in closed),
        "closed_tasks_unsolved": [t for t in closed if t not in solved],
        "open_tasks_kept": sum(t in solved for t in opened),
        "kept_with_recovered_error": sum(s.errors > 0 for s in kept),
        "kept_with_answer_check": sum(s.checks > 0 for s in kept),
        "turns": _summary([s.turns for s in kept]),
        "wall_seconds": round(seconds, 1),
        "runs_detail": [
            {
                "task": s.task_id,
                "kind": s.kind,
                "seed": s.seed,
                "verdict": s.verdict,
                "detail": s.detail,
                "turns": s.turns,
                "errors": s.errors,
                "checks": s.checks,
                "tokens": s.tokens,
                "trajectory": s.trajectory_path,
            }
            for s in samples
        ],
    }
