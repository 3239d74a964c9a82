"""Join training sets (folders of train.jsonl, e.g. from select_training.py) into one, with every
failing reply marked as `analyst collect` marks it now, so that one run from the base trains on all.

    python scripts/mix_training.py runs/v3-data runs/v6-data --out runs/v7-data

A reply whose next message holds a traceback (its cell failed) or begins with the loop's answer
check (the report was sent back) gets ``"train": false``: the trainer keeps it as context for the fix
that follows and puts no loss on it. Sets collected before collect marked them carry loss on those
replies, and a model trained on them learns the mistakes along with the fixes. Conversations are
written in the order given, each set's as it was. Writes OUT/train.jsonl and OUT/selection.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from select_training import CHECK_OPENINGS

FAILED_CELL = "Traceback (most recent call last)"


def untrain_failed(messages: list[dict]) -> int:
    """Mark each assistant reply that failed or was sent back ``train: false``; how many newly."""
    marked = 0
    for reply, answer in itertools.pairwise(messages):
        if reply["role"] != "assistant" or answer["role"] != "user" or reply.get("train") is False:
            continue
        if FAILED_CELL in answer["content"] or answer["content"].startswith(CHECK_OPENINGS):
            reply["train"] = False
            marked += 1
    return marked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="+", help="folders holding a train.jsonl")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    for folder in args.data:
        if not (folder / "train.jsonl").is_file():
            sys.exit(f"error: no train.jsonl in {folder}")
    if args.out.resolve() in {folder.resolve() for folder in args.data}:
        sys.exit(f"error: --out {args.out} is one of the inputs; write the mix to a new folder")

    examples: list[dict] = []
    sources = []
    for folder in args.data:
        lines = [line for line in (folder / "train.jsonl").read_text().splitlines() if line.strip()]
        taken = [json.loads(line) for line in lines]
        marked = sum(untrain_failed(example["messages"]) for example in taken)
        examples += taken
        sources.append({"data": str(folder), "conversations": len(taken), "newly_untrained": marked})

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.jsonl").write_text(
        "".join(json.dumps(example, ensure_ascii=False) + "\n" for example in examples)
    )
    untrained = sum(m.get("train") is False for example in examples for m in example["messages"])
    selection = {"sources": sources, "conversations": len(examples), "untrained_replies": untrained}
    (args.out / "selection.json").write_text(json.dumps(selection, indent=1) + "\n")
    print(f"{len(examples)} conversations, {untrained} replies without loss -> {args.out / 'train.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
