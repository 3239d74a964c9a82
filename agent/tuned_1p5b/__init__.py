"""Package data: the 1.5B tuned model's LoRA adapter and manifest (``--model tuned-1.5b``; see agent/shipped.py)."""
