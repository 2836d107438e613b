"""its-hub's self-consistency, run for benchmarks/peers.py inside the peers' own environment.

Reads one JSON request a line on stdin (``{"method": "sc" | "adaptive_sc", "question": ...}``)
and answers each with one JSON line on stdout (``{"text": ..., "seconds": ...}``), so that the
benchmark can interleave its-hub's calls with the other methods' question by question. Votes
read a reply's answer with ttc-agent's own extractor (``ttc_agent/answers.py``, loaded by path
because ttc-agent is not installed here), the same one ttc-agent's votes and the grading use.

    PEERS_VENV/bin/python benchmarks/peers_runner.py --base-url URL --model NAME --n 8
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

from its_hub.core.algorithms.adaptive_self_consistency import AdaptiveSelfConsistency
from its_hub.core.algorithms.self_consistency import SelfConsistency
from its_hub.core.lms.openai_lm import OpenAICompatibleLanguageModel


def _answers_module():
    path = Path(__file__).resolve().parents[1] / "ttc_agent" / "answers.py"
    spec = importlib.util.spec_from_file_location("ttc_answers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="the OpenAI-compatible server (…/v1)")
    parser.add_argument("--model", required=True, help="served model name")
    parser.add_argument("--n", type=int, default=8, help="samples for self-consistency (adaptive: up to 2n)")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--scope", default="first_result", help="where a reply states its answer")
    args = parser.parse_args()
    answers = _answers_module()

    def project(text: str) -> str:
        return answers.answer_key(answers.extract_answer(text, args.scope)) or text.strip()

    lm = OpenAICompatibleLanguageModel(
        endpoint=args.base_url, api_key="none", model_name=args.model,
        max_tokens=args.max_tokens, temperature=args.temperature,
    )  # fmt: skip
    methods = {
        "sc": (SelfConsistency(consistency_space_projection_func=project), args.n),
        "adaptive_sc": (AdaptiveSelfConsistency(consistency_space_projection_func=project), 2 * args.n),
    }
    for line in sys.stdin:
        request = json.loads(line)
        algorithm, budget = methods[request["method"]]
        started = time.perf_counter()
        reply = algorithm.infer(lm, request["question"], budget=budget)
        seconds = time.perf_counter() - started
        print(json.dumps({"text": reply["content"], "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
