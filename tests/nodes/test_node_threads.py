"""Checkpointed threads that survive a restart, and many threads at once on one backend."""

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest
from fakes import bundle_for
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from ttc_agent.nodes import TTCEngine, TTCNode

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import START, MessagesState, StateGraph
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.budgets import BudgetState, WorkflowBudget
    from ttc_agent.nodes import TTCEngine, TTCNode
    from ttc_agent.probes import ProbeBundle

    class State(MessagesState, BudgetState):
        pass

    db, probes, mode = sys.argv[1:4]
    backend = TransformersBackend()
    graph = StateGraph(State)
    budget = WorkflowBudget(max_tokens=4000, scope="thread")
    bundle = ProbeBundle.load(probes, fingerprint=backend.fingerprint())
    graph.add_node("solve", TTCNode(TTCEngine(backend, bundle, budget=budget)))
    graph.add_edge(START, "solve")
    config = {"configurable": {"thread_id": "t1", "ttc": {"lambda_tokens": 1.0}}}
    with SqliteSaver.from_conn_string(db) as saver:
        app = graph.compile(checkpointer=saver)
        if mode == "ask":
            app.invoke({"messages": [("user", "What is 2 + 3?")]}, config)
        else:
            app.invoke({"messages": [("user", "And what is 4 + 4?")]}, config)
        values = app.get_state(config).values
        messages = [{"type": m.type, "content": m.content, "ttc": m.response_metadata.get("ttc", {}).get("choice"),
                     "budget": m.response_metadata.get("ttc", {}).get("budget"), "usage": getattr(m, "usage_metadata", None)}
                    for m in values["messages"]]
        print(json.dumps({"messages": messages, "ledger": dataclasses.asdict(values["ttc_ledger"])}))
    """
)


def test_sqlite_thread_survives_a_restart_in_a_new_process(tf_backend, tmp_path):
    bundle_for(tf_backend.fingerprint()).save(tmp_path / "probes")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)

    def run(mode):
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "db.sqlite"), str(tmp_path / "probes"), mode],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "LANGGRAPH_STRICT_MSGPACK": "true"},  # the ledger's types are declared
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = run("ask")
    assert [m["type"] for m in first["messages"]] == ["human", "ai"] and first["messages"][1]["ttc"] == "greedy"
    second = run("continue")  # a new process: the thread comes back from the database
    assert [m["type"] for m in second["messages"]] == ["human", "ai", "human", "ai"]
    assert second["messages"][:2] == first["messages"], "messages and decision metadata survived the restart"
    # The thread-scoped ledger came back too: the second call started from the first's balance.
    spent = first["ledger"]["tokens"]
    assert spent == first["messages"][1]["usage"]["total_tokens"] > 0
    assert second["messages"][3]["budget"]["before"]["tokens_left"] == 4000 - spent
    assert second["ledger"]["tokens"] == spent + second["messages"][3]["usage"]["total_tokens"]
    assert second["ledger"]["calls"] == 2


def test_eight_threads_at_once_with_their_own_settings(tf_backend):
    node = TTCNode(TTCEngine(tf_backend, bundle_for(tf_backend.fingerprint())))
    graph = StateGraph(MessagesState)
    graph.add_node("solve", node)
    graph.add_edge(START, "solve")
    app = graph.compile(checkpointer=InMemorySaver())
    configs = [
        {"configurable": {"thread_id": f"t{i}", "ttc": {"lambda_tokens": 1.0 if i % 2 else 0.0}}} for i in range(8)
    ]

    async def all_threads():
        return await asyncio.gather(
            *(app.ainvoke({"messages": [HumanMessage("What is 345 + 678?")]}, c) for c in configs)
        )

    results = asyncio.run(all_threads())
    for i, (out, config) in enumerate(zip(results, configs, strict=True)):
        choice = out["messages"][-1].response_metadata["ttc"]["choice"]
        assert choice == ("greedy" if i % 2 else "best_of_n(4, select=majority)"), f"thread {i} used its own settings"
        assert app.get_state(config).values["messages"][-1].response_metadata["ttc"]["choice"] == choice
