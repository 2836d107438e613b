"""`langgraph dev` for real: the repo's langgraph.json served on loopback, the example graph run
through `langgraph_sdk` with a typed context (what LangGraph Studio sends)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import stop

from ttc_agent.backends.vllm_server import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_langgraph_dev_serves_the_example_graph(tmp_path, embedded_dir):
    from langgraph_sdk import get_client

    port = free_port()
    cli = Path(sys.executable).with_name("langgraph")
    env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1"}
    log = (tmp_path / "langgraph-dev.log").open("w")
    cmd = [str(cli), "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload",
           "--allow-blocking", "--config", str(ROOT / "langgraph.json")]  # fmt: skip
    # From the repo root, as users run it (its state goes to .langgraph_api/, which git ignores).
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, url + "/ok", log.name)

        async def run() -> tuple[dict, dict]:
            client = get_client(url=url)
            out = await client.runs.wait(
                None,
                "multistep_math",
                input={"question": "What is 2 + 3?"},
                context={"strategy": "greedy", "budget": {"max_tokens": 600}},
            )
            (assistant,) = await client.assistants.search(graph_id="multistep_math")
            return out, await client.assistants.get_schemas(assistant["assistant_id"])

        out, schemas = asyncio.run(run())
        assert out["steps"][0]["choice"] == "greedy" and out["steps"][0]["answer"] == "5"
        assert out["ttc_ledger"]["run_tokens"] <= 600 and out["messages"][-1]["content"].endswith("The answer is 5.")
        fields = schemas["context_schema"]["properties"]
        assert {"lambda_tokens", "target_mean_tokens", "strategy", "budget"} <= set(fields), "Studio gets a typed form"
    finally:
        stop(proc)
        log.close()
