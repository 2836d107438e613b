#!/usr/bin/env bash
# Type-check the package and run the whole test suite (real models included), building .venv
# first when it is missing or older than the packaging files. Extra arguments go to pytest,
# e.g. -m 'not slow'.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! sha256sum --status -c .venv/ttc-installed 2>/dev/null; then
    bash scripts/install.sh
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# GSM8K and MATH-500 for the tests: the shared data folder beside the checkout, unless set.
export TTC_AGENT_DATA="${TTC_AGENT_DATA:-$(cd .. && pwd)/shared/data}"
# The type checker first (configured in pyproject.toml: strict on budgets, policy and nodes).
.venv/bin/mypy
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
fi
exit "$status"
