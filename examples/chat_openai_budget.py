"""ttc-agent in front of an existing LangChain chat model: `ChatOpenAI` pointed at `vllm serve`.

Start a server for the embedded model first (``ttc-agent model smollm2-135m`` prints its folder):

    python -m vllm.entrypoints.openai.api_server --model DIR --served-model-name smollm2 \\
        --enforce-eager --dtype float32 --port 8000

then run ``python examples/chat_openai_budget.py --base-url http://127.0.0.1:8000/v1``. The
multi-step math agent solves a sum step by step; every step's strategy is chosen by the probes
shipped for that model, and all steps share one workflow budget.
"""

from __future__ import annotations

import argparse
import os

from langchain_openai import ChatOpenAI
from rich.console import Console
from rich.table import Table
from transformers import AutoTokenizer

from ttc_agent.backends.chat_model_backend import ChatModelBackend
from ttc_agent.backends.models import TEST_MODEL, model_dir
from ttc_agent.budgets import WorkflowBudget
from ttc_agent.demo import SHIPPED_PROBES, make_graph
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode
from ttc_agent.probes import ProbeBundle


def make_engine(base_url: str, api_key: str | None = None) -> TTCEngine:
    """An engine generating through ``ChatOpenAI`` at ``base_url``, counting tokens with the
    embedded model's own tokenizer (the server serves that model)."""
    chat = ChatOpenAI(
        base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"), model="smollm2", max_retries=1
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir(TEST_MODEL))
    backend = ChatModelBackend(
        chat,
        count_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)),
        continue_final_message="vllm",
        context_length=8192,
    )
    return TTCEngine(backend, ProbeBundle.load(SHIPPED_PROBES))


def solve(engine: TTCEngine, question: str, budget: WorkflowBudget) -> dict:
    """Run the multi-step math agent on ``question`` under ``budget``."""
    return make_graph(TTCNode(engine)).invoke({"question": question}, context=TTCContext(budget=budget))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the server's /v1 URL")
    parser.add_argument("--api-key", default=None, help="bearer token (default: $OPENAI_API_KEY)")
    parser.add_argument("--question", default="What is 12 + 7 + 30 + 4?")
    parser.add_argument("--max-tokens", type=int, default=1500, help="the workflow's token budget")
    args = parser.parse_args()
    out = solve(make_engine(args.base_url, args.api_key), args.question, WorkflowBudget(max_tokens=args.max_tokens))
    table = Table(title=args.question)
    for col in ("step", "strategy", "tokens", "answer"):
        table.add_column(col)
    for i, step in enumerate(out["steps"], 1):
        table.add_row(str(i), step["choice"], str(step["tokens"]), str(step["answer"]))
    Console().print(table)
    Console().print(out["messages"][-1].content)


if __name__ == "__main__":
    main()
