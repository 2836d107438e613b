"""A ReAct agent with a calculator tool, built on `TTCChatModel` and `TTCMiddleware`.

Every model call of the agent picks its strategy per call; a step that may call the tool votes
over normalised tool calls with best-of-N. Small models seldom call tools on their own (the
embedded 135M model never does), so the middleware asks for a call until the calculator has been
used (``force_first_tool_call``). It runs on the reference model with the probes shipped for it:

    python examples/react_calculator.py "What is 345 + 678?"
    python examples/react_calculator.py --model smollm2-135m "What is 345 + 678?"   # the fast one
    python examples/react_calculator.py --probes PROBES_DIR "What is 345 + 678?"
"""

from __future__ import annotations

import argparse
import ast
import operator

from langchain.agents import create_agent
from langchain_core.tools import tool

from ttc_agent.answers import answers_equal, extract_answer
from ttc_agent.nodes import TTCChatModel, TTCEngine, TTCMiddleware
from ttc_agent.verifiers import CheckVerifier

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers and + - * / are allowed")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / and parentheses, e.g. '345 + 678'."""
    try:
        value = _evaluate(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"
    return str(int(value) if float(value).is_integer() else value)


def calculator_check(question: str, candidate: str) -> bool | None:
    """Does the candidate's answer equal what the calculator computes for the question?
    ``None`` (unknown) when the question holds no expression or the candidate no answer."""
    expression = "".join(ch for ch in question if ch in "0123456789+-*/(). ").strip()
    answer = extract_answer(candidate, "first_result")
    if not expression or answer is None:
        return None
    value = calculator.invoke({"expression": expression})
    return None if value.startswith("error") else answers_equal(answer, value)


CALCULATOR_CHECK = CheckVerifier(calculator_check, name="check:calculator")


def make_agent(engine: TTCEngine):
    """A create_agent ReAct agent whose every model call goes through ttc-agent."""
    return create_agent(
        TTCChatModel(engine=engine),
        tools=[calculator],
        middleware=[TTCMiddleware(engine, force_first_tool_call=True)],
    )


def main() -> None:
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.demo import shipped_probes
    from ttc_agent.probes import ProbeBundle

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default="What is 345 + 678?")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="named model or model folder")
    parser.add_argument("--probes", help="probe bundle folder (default: the one shipped for --model)")
    args = parser.parse_args()
    backend = TransformersBackend(args.model)
    bundle = (
        shipped_probes(backend)
        if args.probes is None
        else ProbeBundle.load(args.probes, fingerprint=backend.fingerprint())
    )
    # The calculator also checks final answers: best-of-N candidates it confirms score highest.
    agent = make_agent(TTCEngine(backend, bundle, verifier=CALCULATOR_CHECK))
    for message in agent.invoke({"messages": [("user", args.question)]}, {"recursion_limit": 8})["messages"]:
        print(f"[{message.type}] {message.content or message.tool_calls}")


if __name__ == "__main__":
    main()
