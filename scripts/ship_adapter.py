"""Put a trained LoRA adapter into the package as the tuned model (agent/tuned/, ``--model tuned``).

    python scripts/ship_adapter.py runs/tuned-lora --model-id analyst-tuned-0.5b-v1
    python scripts/ship_adapter.py runs/tuned-lora-1p5b-v2 --model-id analyst-tuned-1.5b-v2 \
        --base base-1.5b --dest agent/tuned_1p5b

Copies the adapter config (its base set to ``--base``: ``base``, the bundled
Qwen2.5-Coder-0.5B-Instruct, or ``base-1.5b``, the optional extra's 1.5B), stores
the weights as fp16 (half the bytes; the GGUF built from them is Q8_0, coarser still), and writes
manifest.json with the adapter's sha256, the training config and data stats from the adapter dir. The
tokenizer is left out: it is the base model's. Maintainers run this; `analyst run` then builds the
GGUF from it once per machine (agent/shipped.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.records import file_sha256
from agent.shipped import ADAPTER_FILE, MANIFEST_FILE, TUNED_DIR

BASES = {
    "base": "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (the bundled default, --model base)",
    "base-1.5b": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (the optional extra model-1p5b, --model base-1.5b)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter", type=Path)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--dest", type=Path, default=TUNED_DIR)
    parser.add_argument("--base", choices=sorted(BASES), default="base", help="the base it was trained over")
    args = parser.parse_args(argv)

    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((args.adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = args.base
    config["inference_mode"] = True
    tensors = {
        name: t.to(torch.float16).contiguous() for name, t in load_file(args.adapter / ADAPTER_FILE).items()
    }

    if args.dest.exists():
        for name in ("adapter_config.json", ADAPTER_FILE, MANIFEST_FILE):
            (args.dest / name).unlink(missing_ok=True)
    args.dest.mkdir(parents=True, exist_ok=True)
    (args.dest / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(tensors, args.dest / ADAPTER_FILE, metadata={"format": "pt"})

    def read(name: str) -> object:
        path = args.adapter / name
        return json.loads(path.read_text()) if path.exists() else None

    manifest = {
        "model_id": args.model_id,
        "base": BASES[args.base],
        "adapter_sha256": file_sha256(args.dest / ADAPTER_FILE),
        "adapter_bytes": (args.dest / ADAPTER_FILE).stat().st_size,
        "parameters": sum(t.numel() for t in tensors.values()),
        # what the adapter really adapts (train_config's lora_targets are the settings' defaults when
        # training continued an existing adapter: its own targets decide)
        "target_modules": sorted(config.get("target_modules") or []),
        "train_config": read("train_config.json"),
        "data_stats": read("data_stats.json"),
        "train_summary": {k: v for k, v in (read("train_summary.json") or {}).items() if k != "log"},
    }
    (args.dest / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps({k: manifest[k] for k in ("model_id", "adapter_sha256", "adapter_bytes", "parameters")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
