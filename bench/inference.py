"""Inference benchmark: transformers fp32 vs our llamacpp backend vs raw llama-cpp-python, one model.

Prints, in one run on the same GGUF and the same prompt:
  1. prefill and decode tokens/s of each (fresh KV cache, greedy, fixed token budget);
  2. the latency of turn 2 and turn 20 of an analysis replayed through each, then of those two
     turns re-timed --reps times (medians); the history is a real system prompt + data preview of
     examples/sales.csv + 19 pandas cells whose outputs are computed here, so turn N's prompt holds
     N-1 code/observation pairs, and turn 20 adds the same new tokens as turn 2;
  3. the ratios against the targets (ours >= 0.9x raw decode and >= 5x transformers; turn-20
     prefill <= 1.5x turn-2).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/inference.py [--model default] [--tokens 96]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.backends.base import GenerationConfig  # noqa: E402
from agent.backends.chat_template import common_prefix  # noqa: E402
from agent.models import resolve_model  # noqa: E402
from agent.prompts import SYSTEM_PROMPT, first_user_message, observation_message  # noqa: E402
from agent.records import Message  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SALES = ROOT / "examples" / "sales.csv"
LONG_ASK = (
    "Write one long, well-commented pandas script that explores this file step by step: "
    "load it, check types, group revenue by region, product and month, compute growth, "
    "find outliers and plot three charts. Write the whole script now."
)
CELLS = [
    "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint(df.shape)\nprint(df.dtypes)",
    "print(df.head(10))",
    "print(df.describe())",
    "print(df.isna().sum())",
    "df['month'] = pd.to_datetime(df['month'])\nprint(df['month'].min(), df['month'].max())",
    "print(df.groupby('region')['revenue'].sum().sort_values(ascending=False))",
    "print(df.groupby('product')['revenue'].sum().sort_values(ascending=False))",
    "by_month = df.groupby('month')['revenue'].sum()\nprint(by_month)",
    "print(by_month.pct_change().round(3).tail(12))",
    "pivot = df.pivot_table(index='month', columns='region', values='revenue', aggfunc='sum')\nprint(pivot.tail())",
    "print(df.groupby(['region', 'product'])['units'].sum().unstack())",
    "print(df['unit_price'].describe())",
    "print((df['revenue'] - df['units'] * df['unit_price']).abs().max())",
    "q = df['revenue'].quantile([0.01, 0.99])\nprint(q)\nprint(df[df['revenue'] > q.iloc[1]])",
    "df['year'] = df['month'].dt.year\nprint(df.groupby('year')['revenue'].sum())",
    "growth = df.groupby('year')['revenue'].sum().pct_change()\nprint(growth)",
    "print(df.corr(numeric_only=True).round(3))",
    "top = df.sort_values('revenue', ascending=False).head(5)\nprint(top)",
    # Last, the first cell again (it reloads the file, so its output is the first one's too): turn 2
    # and turn 20 then add the same new tokens, and their prefill times differ only by the history.
]
CELLS.append(CELLS[0])


def run_cells() -> list[tuple[str, str]]:
    """Execute the cells with pandas in the sales.csv folder; returns (reply text, observation) pairs."""
    namespace: dict[str, Any] = {}
    pairs = []
    with contextlib.chdir(SALES.parent):
        for number, code in enumerate(CELLS, start=1):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(code, namespace)  # our own fixed cells, run only to get real outputs
            reply = f"Step {number}.\n```python\n{code}\n```"
            pairs.append((reply, observation_message(out.getvalue().strip(), number, 30)))
    return pairs


def conversation(pairs: list[tuple[str, str]], turn: int) -> list[Message]:
    """The messages the model sees at ``turn`` (1-based): system, task, then turn-1 pairs."""
    from agent.preview import load_input, preview_text

    task = first_user_message(
        "Find the revenue trends by region and product.", [preview_text(load_input(SALES))]
    )
    messages = [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=task)]
    for reply, observation in pairs[: turn - 1]:
        messages += [Message(role="assistant", content=reply), Message(role="user", content=observation)]
    return messages


class RawLlama:
    """llama-cpp-python as its docs use it: create_completion on the rendered prompt, streamed."""

    name = "raw llama-cpp-python"

    def __init__(self, ours: Any, gguf: Path, n_ctx: int):
        from llama_cpp import Llama

        self.ours = ours  # only to render the same prompt text
        threads = ours.n_threads
        self.llm = Llama(
            model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )

    def timed(self, messages: list[Message], tokens: int) -> dict[str, float]:
        ids = self.ours.prompt_ids(messages)
        # llama-cpp-python matches the prompt against its KV cache as our backend does; count the same way.
        cached = common_prefix(list(self.llm._input_ids), ids) if self.llm.n_tokens else 0
        evaluated = len(ids) - min(cached, len(ids) - 1) if cached else len(ids)
        start = time.perf_counter()
        first = None
        stream = self.llm.create_completion(ids, max_tokens=tokens, temperature=0.0, top_k=0, stream=True)
        for _chunk in stream:
            first = first or time.perf_counter()
        end = time.perf_counter()
        # Every generated token but the last was evaluated into the context.
        completion = self.llm.n_tokens - len(ids) + 1
        return _timing(evaluated, completion, (first or end) - start, end - (first or end))

    def reset(self) -> None:
        self.llm.reset()


def timed_backend(backend: Any, messages: list[Message], tokens: int) -> dict[str, float]:
    reply = backend.generate(messages, GenerationConfig(max_new_tokens=tokens, temperature=0.0))
    return _timing(
        backend.last_prefill_tokens,
        reply.completion_tokens,
        backend.last_prefill_seconds,
        backend.last_decode_seconds,
    )


def _timing(prefill_tokens: int, completion: int, prefill_s: float, decode_s: float) -> dict[str, float]:
    return {
        "prefill_tokens": prefill_tokens,
        "prefill_s": prefill_s,
        "completion": completion,
        "decode_s": decode_s,
        "prefill_tps": prefill_tokens / prefill_s if prefill_s else 0.0,
        "decode_tps": (completion - 1) / decode_s if decode_s and completion > 1 else 0.0,
    }


def measure_speed(runners: list[tuple], messages: list[Message], tokens: int, reps: int) -> dict[str, dict]:
    """Median over ``reps`` fresh-cache runs of one prompt; runners take turns, so load drift hits all alike."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in runners}
    for rep in range(reps):
        for name, runner, call, slow in runners:
            if slow and rep > 0:
                continue  # transformers is measured once: it is 10x slower and far from its target
            runner.reset()
            runs[name].append(call(messages, tokens))
    return {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}


def replay(runners: list[tuple], pairs: list[tuple[str, str]], turns: int, tokens: int) -> dict[str, list]:
    """Replay turns 1..``turns`` in order; each runner keeps its own KV cache, and they take turns."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in runners}
    for _, runner, _, _ in runners:
        runner.reset()
    for turn in range(1, turns + 1):
        messages = conversation(pairs, turn)
        for name, _, call, _ in runners:
            start = time.perf_counter()
            timing = call(messages, tokens)
            timing["total_s"] = time.perf_counter() - start
            results[name].append(timing)
            print(
                f"  turn {turn:2d} {name:22s} prefill {timing['prefill_tokens']:5.0f} tok {timing['prefill_s']:6.2f} s"
                f" total {timing['total_s']:6.2f} s",
                flush=True,
            )
    return results


def remeasure(runners: list[tuple], pairs: list[tuple[str, str]], turns: list[int], tokens: int, reps: int):
    """Median prefill of turn n, ``reps`` times per turn: one timing of one turn is too noisy here.

    Each repetition first replies to turn n-1 (so the KV cache holds turns 1..n-1 and a reply of
    its own), then times turn n, whose prompt diverges from that cache at the reply: each backend
    crops its cache there and evaluates only turn n's new tokens, as in a real run.
    """
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(reps):
        for n in turns:
            for name, _, call, _ in runners:
                call(conversation(pairs, n - 1), tokens)
                runs.setdefault((name, n), []).append(call(conversation(pairs, n), tokens))
    return {
        key: {field: statistics.median(r[field] for r in rs) for field in rs[0]} for key, rs in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="a GGUF model spec (default: the default model)")
    parser.add_argument("--tokens", type=int, default=96, help="tokens to decode in the speed test")
    parser.add_argument("--turn-tokens", type=int, default=24, help="tokens to decode per replayed turn")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the llama.cpp speed runs")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: free physical cores)"
    )
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--contrast", action="store_true", help="also time the last turn on an empty cache")
    args = parser.parse_args()
    report(args)


def report(args: argparse.Namespace) -> None:
    from agent.backends.llamacpp_backend import LlamaCppBackend

    resolved = resolve_model(args.model)
    pairs = run_cells()
    ask = conversation(pairs, 1)
    ask[-1] = Message(role="user", content=ask[-1].content + "\n\n" + LONG_ASK)
    print(f"model {resolved.model_id} ({resolved.path}); cores {os.cpu_count()}", flush=True)
    print(
        f"load average at start {os.getloadavg()[0]:.1f} (other work on the machine skews every figure)",
        flush=True,
    )
    ours = LlamaCppBackend(resolved, n_ctx=args.n_ctx, n_threads=args.threads)
    print(f"llama.cpp threads {ours.n_threads}", flush=True)
    raw = RawLlama(ours, resolved.path, args.n_ctx)
    runners = [("ours (llamacpp)", ours, lambda m, t: timed_backend(ours, m, t), False)]
    runners.append((raw.name, raw, raw.timed, False))
    if not args.skip_transformers:
        from agent.backends.transformers_backend import TransformersBackend

        hf = TransformersBackend(resolved, dtype="float32")
        runners.append(("transformers fp32", hf, lambda m, t: timed_backend(hf, m, t), True))
    speed = measure_speed(runners, ask, args.tokens, args.reps)
    for name, s in speed.items():
        print(
            f"{name:22s} prefill {s['prefill_tokens']:.0f} tok {s['prefill_tps']:8.1f} tok/s | "
            f"decode {s['completion']:.0f} tok {s['decode_tps']:6.1f} tok/s",
            flush=True,
        )
    turns = replay(runners, pairs, args.turns, args.turn_tokens)
    for name, results in turns.items():
        t2, tn = results[1], results[-1]
        print(
            f"{name:22s} turn 2: prefill {t2['prefill_tokens']:.0f} tok {t2['prefill_s']:.2f} s, total {t2['total_s']:.2f} s"
            f" | turn {args.turns}: prefill {tn['prefill_tokens']:.0f} tok {tn['prefill_s']:.2f} s, "
            f"total {tn['total_s']:.2f} s",
            flush=True,
        )
    print(f"turn 2 and turn {args.turns} again, {args.reps} times each (medians):", flush=True)
    medians = remeasure(runners, pairs, [2, args.turns], args.turn_tokens, args.reps)
    for (name, n), t in medians.items():
        print(
            f"  {name:22s} turn {n:2d}: prefill {t['prefill_tokens']:.0f} tok {t['prefill_s']:.2f} s",
            flush=True,
        )
    if args.contrast:
        no_reuse(ours, pairs, args)
    print_targets(speed, medians, [name for name, *_ in runners], args.turns)
    print(f"load average at end {os.getloadavg()[0]:.1f}", flush=True)


def no_reuse(ours: Any, pairs: list[tuple[str, str]], args: argparse.Namespace) -> None:
    """For contrast: the last turn's prompt on an empty KV cache (what re-encoding history would cost)."""
    ours.reset()
    timing = timed_backend(ours, conversation(pairs, args.turns), args.turn_tokens)
    print(
        f"ours (llamacpp) turn {args.turns} with an empty cache: prefill {timing['prefill_tokens']:.0f} tok "
        f"{timing['prefill_s']:.2f} s",
        flush=True,
    )


def print_targets(
    speed: dict[str, dict], turns: dict[tuple[str, int], dict], names: list[str], n: int
) -> None:
    ours, raw = speed["ours (llamacpp)"], speed["raw llama-cpp-python"]
    lines = [("ours / raw decode", ours["decode_tps"] / raw["decode_tps"], ">= 0.9")]
    lines.append(("ours / raw prefill", ours["prefill_tps"] / raw["prefill_tps"], "(info)"))
    if "transformers fp32" in speed:
        hf = speed["transformers fp32"]
        lines.append(("ours / transformers decode", ours["decode_tps"] / hf["decode_tps"], ">= 5"))
        lines.append(("ours / transformers prefill", ours["prefill_tps"] / hf["prefill_tps"], "(info)"))
    for name in names:
        t2, tn = turns[(name, 2)], turns[(name, n)]
        lines.append((f"{name}: turn {n} / turn 2 prefill s", tn["prefill_s"] / t2["prefill_s"], "<= 1.5"))
        per_token = [t["prefill_s"] / max(t["prefill_tokens"], 1) for t in (t2, tn)]
        lines.append((f"{name}: same, per evaluated token", per_token[1] / per_token[0], "(info)"))
    print("\nratios vs targets")
    for label, value, target in lines:
        print(f"  {label:48s} {value:7.2f}x   target {target}")


if __name__ == "__main__":
    main()
