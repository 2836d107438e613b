"""The slim install: ttc-agent's wheel with the core alone runs a graph against a real served
model and names the extra a missing feature needs; then the container image's install set
(`[serve,postgres]`, deploy/Dockerfile) runs its entrypoint, `ttc-agent serve` with no arguments,
configured by deploy/compose.yaml's environment (the hosts swapped for a local Postgres and a
real `vllm serve`): the compose stack as processes, as no container runtime runs here.

One fresh virtual environment (no packages of the test's), the wheel built from this checkout,
this machine's pins (requirements/constraints.txt); packages come from the registry (pip's cache).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import yaml
from fakes import bundle_for
from postgres_server import LocalPostgres, postgres_bin

from ttc_agent.backends.vllm_server import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

CORE_GRAPH = """
import importlib.util, json, sys
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from ttc_agent.backends import OpenAIBackend
from ttc_agent.extras import MissingExtraError
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode
from ttc_agent.probes import ProbeBundle

absent = [m for m in ("torch", "transformers", "fastapi", "uvicorn", "matplotlib", "psycopg", "vllm")
          if importlib.util.find_spec(m) is not None]
engine = TTCEngine(OpenAIBackend(sys.argv[1], "smollm2"), ProbeBundle.load(sys.argv[2]))
graph = StateGraph(MessagesState, context_schema=TTCContext)
graph.add_node("solve", TTCNode(engine))
graph.add_edge(START, "solve")
out = graph.compile().invoke({"messages": [HumanMessage("What is 2 + 3? Answer with the number.")]},
                             context=TTCContext(strategy="greedy", max_tokens_per_sample=16))
reply = out["messages"][-1]
missing = {}
for name, make in (("TransformersBackend", lambda: __import__("ttc_agent.backends", fromlist=["x"]).TransformersBackend()),
                   ("plots", lambda: __import__("ttc_agent.plotting", fromlist=["x"]).save_figure(None, "x"))):
    try:
        make()
    except MissingExtraError as exc:
        missing[name] = str(exc)
print(json.dumps({"present": absent, "reply": reply.content, "choice": reply.response_metadata["ttc"]["choice"],
                  "tokens": reply.response_metadata["ttc"]["actual"]["total_tokens"], "missing": missing}))
"""


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_core_wheel_runs_a_graph_and_the_images_entrypoint_serves_the_compose_stack(tmp_path, vllm_server):
    if postgres_bin() is None:
        pytest.skip("Postgres is not installed here (Debian: apt-get install postgresql)")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist")], timeout=600)
    (wheel,) = (tmp_path / "dist").glob("ttc_agent-*.whl")
    env = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(env)], timeout=120)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "-c", str(REPO / "requirements" / "constraints.txt")]  # fmt: skip
    installed = run([*pip, str(wheel)], timeout=900)
    assert "ERROR" not in installed.stderr, installed.stderr
    bundle = bundle_for(None).save(tmp_path / "bundle")  # text statistics only: no model in the process
    script = tmp_path / "graph.py"
    script.write_text(textwrap.dedent(CORE_GRAPH))
    out = json.loads(run([str(env / "bin" / "python"), str(script), vllm_server, str(bundle)], timeout=300).stdout)
    assert out["present"] == []  # the core pulled none of the extras' packages
    assert out["choice"] == "greedy" and "5" in out["reply"] and out["tokens"] > 0
    assert (
        "[local]" in out["missing"]["TransformersBackend"]
        and "pip install 'ttc-agent[local]'" in (out["missing"]["TransformersBackend"])
    )
    assert "[plots]" in out["missing"]["plots"]
    refused = subprocess.run([str(env / "bin" / "ttc-agent"), "serve", "--backend", vllm_server],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 1 and "ttc-agent[serve]" in refused.stderr

    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert (
        'pip install --no-cache-dir ".[serve,postgres]"' in dockerfile
        and 'ENTRYPOINT ["ttc-agent", "serve"]' in dockerfile
    )
    run([*pip, f"{wheel}[serve,postgres]"], timeout=900)
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    image_env = dict(kv.split("=", 1) for kv in re.findall(r"^ENV (.*)$", dockerfile, re.M)[0].split())
    port = free_port()
    with LocalPostgres() as pg:
        environment = {**image_env, **compose["services"]["ttc-a"]["environment"], "TTC_AGENT_PORT": str(port),
                       "TTC_AGENT_HOST": "127.0.0.1", "TTC_AGENT_BACKEND": vllm_server, "TTC_AGENT_MODEL": "smollm2",
                       "TTC_AGENT_STORE": pg.dsn}  # fmt: skip
        server = subprocess.Popen([str(env / "bin" / "ttc-agent"), "serve"], env={"PATH": "/usr/bin:/bin", **environment},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                alive = server.poll() is None and time.monotonic() < deadline
                assert alive, server.stdout.read() if server.stdout else ""
                time.sleep(0.5)
            ready = httpx.get(f"{base}/health/ready", timeout=10).json()
            assert ready["checks"] == {"store": "ok", "backend": "ok"}
            reply = httpx.post(f"{base}/v1/chat/completions", timeout=120, headers={"x-ttc-session": "s1"}, json={
                "model": "ttc", "max_tokens": 16, "messages": [{"role": "user", "content": "What is 2 + 3?"}],
            })  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"]
            # The session budget of compose.yaml (TTC_AGENT_SESSION_TOKENS) counts down in Postgres.
            left = int(reply.headers["x-ttc-session-remaining-tokens"])
            assert 0 < left < int(environment["TTC_AGENT_SESSION_TOKENS"])
        finally:
            server.terminate()
            server.wait(timeout=30)
