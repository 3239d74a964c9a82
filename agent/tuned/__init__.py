"""Package data: the tuned model's LoRA adapter and manifest (``--model tuned``; see agent/shipped.py)."""
