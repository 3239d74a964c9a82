"""Conversations of a chosen token length, for timing training runs (speed depends on length, not words).

``python -m finetune.speed OUT.jsonl --tokens 2048 --count 6`` writes analyst-shaped conversations
(system, task, then code / output turns, then a report), each at least ``--tokens`` long under the
default model's tokenizer, so ``max_length`` cuts every one to exactly that size. ``--tokens
600,2048`` cycles through several lengths, to time padding against bucketing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import click

_SYSTEM = "You are a data analyst. Write Python in ```python blocks; the output comes back to you."
_CODE = [
    "df = pd.read_csv('{name}.csv')\nprint(df.shape)\nprint(df.dtypes)\nprint(df.head())",
    "missing = df.isna().sum()\nprint(missing[missing > 0])\ndf = df.dropna(subset=['{col}'])",
    "summary = df.groupby('{col}')['value'].agg(['mean', 'median', 'count'])\nprint(summary.round(2))",
    "import matplotlib.pyplot as plt\nax = df['value'].hist(bins=30)\nax.set_title('{col}')\nplt.show()",
    "corr = df.select_dtypes('number').corr()\nprint(corr.round(3))",
]


def _observation(rng: random.Random) -> str:
    rows = [
        f"{rng.choice('abcdefgh')}{i:<6} {rng.uniform(0, 1000):10.3f} {rng.randint(0, 99):5d}"
        for i in range(12)
    ]
    return "Output:\n" + "\n".join(rows)


def conversation(tokenizer: Any, tokens: int, rng: random.Random) -> dict[str, Any]:
    """An analyst conversation of at least ``tokens`` tokens under ``tokenizer``'s chat template."""
    name, col = rng.choice(["sales", "trips", "wages"]), rng.choice(["region", "month", "kind"])
    messages = [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"What drives the value in {name}.csv? Group by {col}."},
    ]
    while True:
        code = rng.choice(_CODE).format(name=name, col=col)
        messages.append({"role": "assistant", "content": f"Next I check this.\n```python\n{code}\n```"})
        messages.append({"role": "user", "content": _observation(rng)})
        length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        if length >= tokens:
            break
    messages.append(
        {"role": "assistant", "content": f"## Final Report\nThe value in {name} varies with {col}."}
    )
    return {"messages": messages}


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--base", default="base", show_default=True, help="model whose tokenizer measures length")
@click.option(
    "--tokens", default="2048", show_default=True, help="length, or comma-separated lengths to cycle"
)
@click.option("--count", default=6, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--seed", default=0, show_default=True)
def main(out: Path, base: str, tokens: str, count: int, seed: int) -> None:
    """Write COUNT conversations of the given token lengths to OUT (JSONL)."""
    from transformers import AutoTokenizer

    from finetune.train import TrainError, resolve_base

    try:
        lengths = [int(part) for part in tokens.split(",")]
        tokenizer = AutoTokenizer.from_pretrained(resolve_base(base).hf_dir)
    except (ValueError, TrainError) as exc:
        raise click.ClickException(str(exc)) from exc
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for index in range(count):
            handle.write(json.dumps(conversation(tokenizer, lengths[index % len(lengths)], rng)) + "\n")
    click.echo(f"{count} conversations written to {out}")


if __name__ == "__main__":
    main()
