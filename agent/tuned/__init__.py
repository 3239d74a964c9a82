"""Package data: the tuned default model's LoRA adapter and manifest (see agent/shipped.py)."""
