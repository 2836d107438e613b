"""Two `ttc-agent serve` processes sharing one Postgres, in front of one real `vllm serve`: a
session's budget holds across both replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from conftest import stop

from ttc_agent.backends.vllm_server import free_port, wait_until_ready

pytestmark = pytest.mark.slow


def replica(upstream: str, dsn: str, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "ttc_agent.cli", "serve", "--backend", upstream, "--model", "smollm2",
           "--store", dsn, "--port", str(port), "--max-tokens", "64"]  # fmt: skip
    env = {**os.environ, "TTC_AGENT_API_KEYS": "k1"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_until_ready(proc, f"http://127.0.0.1:{port}/health", log.name, seconds=120)
    return proc, f"http://127.0.0.1:{port}"


def test_a_session_budget_holds_across_two_replicas(vllm_server, postgres_dsn, tmp_path):
    with open(tmp_path / "a.log", "w") as la, open(tmp_path / "b.log", "w") as lb:
        procs = [replica(vllm_server, postgres_dsn, la), replica(vllm_server, postgres_dsn, lb)]
        try:
            urls = [u for _, u in procs]
            auth = {"Authorization": "Bearer k1"}
            httpx.post(
                urls[0] + "/v1/sessions", json={"id": "team", "max_tokens": 600}, headers=auth
            ).raise_for_status()
            clients = [openai.OpenAI(base_url=u + "/v1", api_key="k1", max_retries=0, timeout=120) for u in urls]

            def ask(i: int) -> int:
                try:
                    r = clients[i % 2].chat.completions.create(
                        model="ttc", messages=[{"role": "user", "content": f"What is {i} + 7?"}], user="team"
                    )
                except openai.APIStatusError as exc:
                    assert exc.status_code == 402, exc
                    return -1
                return r.usage.total_tokens

            with ThreadPoolExecutor(8) as pool:
                spent = list(pool.map(ask, range(24)))
            seen = [httpx.get(u + "/v1/sessions/team", headers=auth).json() for u in urls]
        finally:
            for proc, _ in procs:
                stop(proc)
    started = " ".join((tmp_path / "a.log").read_text().split())
    assert "shipped probes were fitted on smollm2-135m and are not checked" in started, "the replica says so"
    answered = [t for t in spent if t > 0]
    assert answered and -1 in spent, "requests were answered until the shared budget ran out"
    assert seen[0] == seen[1], "both replicas read one account"
    assert seen[0]["tokens"] == sum(answered) <= 600 and seen[0]["in_flight"] == 0
