"""`ttc-agent serve` scaled out: two replicas sharing one Postgres, in front of one `vllm serve`.

**Overhead.** The same greedy requests (``max_tokens`` as the menu's) at concurrency 8, sent
straight to `vllm serve` and through the replicas (model ``ttc:greedy``, alternating replicas),
interleaved for ``--rounds`` rounds: requests/s each way and the latency the decision layer
adds per request (paired by question: p50 and p99).

**Budgets across replicas.** 8 sessions, each with a token budget, and 32 clients (4 per
session) that send adaptive requests to both replicas in turn until their session answers
402. Counted: requests answered, sessions whose spend passed their budget (must be 0), and the
spend the clients saw against the store's.

Prints a table and writes benchmarks/results/serve.json.

    .venv/bin/python -m benchmarks.serve [--model qwen2.5-coder-0.5b] [--requests 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_server import LocalPostgres  # noqa: E402

from benchmarks._common import write_results  # noqa: E402
from benchmarks.docs import refresh  # noqa: E402
from ttc_agent.backends import VLLMServer  # noqa: E402
from ttc_agent.backends.vllm_server import free_port, wait_until_ready  # noqa: E402
from ttc_agent.demo import SHIPPED_PROBES  # noqa: E402
from ttc_agent.probes import ProbeBundle  # noqa: E402

KEY = "bench-key"
SESSIONS, CLIENTS, SESSION_TOKENS = 8, 32, 800


def questions(n: int) -> list[str]:
    rng = np.random.default_rng(3)
    return [f"What is {a} + {b}? Answer with the number." for a, b in rng.integers(100, 999, size=(n, 2))]


def start_replica(
    upstream: str, served: str, dsn: str, log: Path, tokenizer: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "ttc_agent.cli", "serve", "--backend", upstream, "--model", served,
           "--store", dsn, "--port", str(port), "--max-tokens", "512", "--tokenizer", tokenizer]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TTC_AGENT_API_KEYS": KEY}
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(proc, url + "/health", log, seconds=180)
    return proc, url


def overhead(
    direct: openai.OpenAI,
    replicas: list[openai.OpenAI],
    served: str,
    n: int,
    rounds: int,
    max_tokens: int,
    tokenizer: str,
) -> dict[str, Any]:
    from ttc_agent.backends import OpenAIBackend

    qs = questions(n)
    backend = OpenAIBackend(str(direct.base_url), served, timeout=600, max_retries=0, tokenizer=tokenizer)

    def one(args: tuple[int, str]) -> float:
        i, way = args
        messages = [{"role": "user", "content": qs[i]}]
        started = time.perf_counter()
        if way == "direct":
            direct.chat.completions.create(model=served, messages=messages, temperature=0, max_tokens=max_tokens)
        elif way == "backend":  # the request ttc-agent's greedy sends (logprobs included), no decision
            backend.generate(messages, max_tokens=max_tokens, temperature=0.0)
        else:
            replicas[i % len(replicas)].chat.completions.create(model="ttc:greedy", messages=messages, temperature=0)
        return time.perf_counter() - started

    ways = ("direct", "backend", "server")
    rps: dict[str, list[float]] = {w: [] for w in ways}
    latency: dict[str, list[list[float]]] = {w: [] for w in ways}
    for _ in range(rounds):
        for way in ways:
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                seconds = list(pool.map(one, [(i, way) for i in range(n)]))
            rps[way].append(n / (time.perf_counter() - started))
            latency[way].append(seconds)
    added = [
        s - d for rs, rd in zip(latency["server"], latency["direct"], strict=True) for s, d in zip(rs, rd, strict=True)
    ]
    direct_rps, server_rps = statistics.median(rps["direct"]), statistics.median(rps["server"])
    backend_rps = statistics.median(rps["backend"])
    return {
        "requests": n,
        "rounds": rounds,
        "concurrency": 8,
        "max_tokens": max_tokens,
        "requests_per_s_direct": round(direct_rps, 3),
        "requests_per_s_backend": round(backend_rps, 3),
        "requests_per_s_server": round(server_rps, 3),
        "overhead": round(1 - server_rps / direct_rps, 4),
        "overhead_of_the_request_shape": round(1 - backend_rps / direct_rps, 4),
        "added_latency_p50_s": round(float(np.percentile(added, 50)), 3),
        "added_latency_p99_s": round(float(np.percentile(added, 99)), 3),
    }


def budgets(replicas: list[str]) -> dict[str, Any]:
    admin = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    for s in range(SESSIONS):
        admin.post(replicas[0] + "/v1/sessions", json={"id": f"s{s}", "max_tokens": SESSION_TOKENS}).raise_for_status()
    clients = [openai.OpenAI(base_url=u + "/v1", api_key=KEY, max_retries=0, timeout=600) for u in replicas]
    qs = questions(200)

    def client(c: int) -> dict[str, int]:
        session, seen, answered, refused = f"s{c % SESSIONS}", 0, 0, 0
        for k in range(50):
            try:
                r = clients[(c + k) % 2].chat.completions.create(
                    model="ttc", messages=[{"role": "user", "content": qs[(c * 7 + k) % 200]}], user=session
                )
            except openai.APIStatusError as exc:
                if exc.status_code != 402:
                    raise
                refused += 1
                break
            seen += r.usage.total_tokens
            answered += 1
        return {"session": c % SESSIONS, "tokens": seen, "answered": answered, "refused": refused}

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        rows = list(pool.map(client, range(CLIENTS)))
    wall = time.perf_counter() - started
    stored = [admin.get(replicas[s % 2] + f"/v1/sessions/s{s}").json() for s in range(SESSIONS)]
    seen = [sum(r["tokens"] for r in rows if r["session"] == s) for s in range(SESSIONS)]
    return {
        "sessions": SESSIONS,
        "clients": CLIENTS,
        "session_max_tokens": SESSION_TOKENS,
        "requests_answered": sum(r["answered"] for r in rows),
        "requests_refused_402": sum(r["refused"] for r in rows),
        "sessions_over_budget": sum(
            1 for st, sn in zip(stored, seen, strict=True) if st["tokens"] > SESSION_TOKENS or sn > SESSION_TOKENS
        ),  # fmt: skip
        "tokens_seen_by_clients": seen,
        "tokens_in_store": [st["tokens"] for st in stored],
        "reservations_left": sum(st["in_flight"] for st in stored),
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="registered model name or folder")
    parser.add_argument("--requests", type=int, default=32, help="requests per round and way (overhead)")
    parser.add_argument("--rounds", type=int, default=2, help="overhead rounds (direct and server interleaved)")
    args = parser.parse_args()
    console = Console()
    max_tokens = int(ProbeBundle.load(SHIPPED_PROBES).menu.defaults["max_tokens"])
    logs = Path("/tmp")
    with VLLMServer(args.model, served_name="m") as vllm, LocalPostgres() as pg:
        procs = []
        try:
            for i in range(2):
                procs.append(start_replica(vllm.v1, "m", pg.dsn, logs / f"ttc-serve-replica-{i}.log", args.model))
            urls = [u for _, u in procs]
            direct = openai.OpenAI(base_url=vllm.v1, api_key="none", max_retries=0, timeout=600)
            replicas = [openai.OpenAI(base_url=u + "/v1", api_key=KEY, max_retries=0, timeout=600) for u in urls]
            with console.status("overhead: straight to vllm serve against through the replicas..."):
                over = overhead(direct, replicas, "m", args.requests, args.rounds, max_tokens, args.model)
            with console.status(f"{CLIENTS} clients in {SESSIONS} sessions across 2 replicas..."):
                shared = budgets(urls)
        finally:
            for proc, _ in procs:
                proc.terminate()
                proc.wait(timeout=30)
    table = Table(title=f"ttc-agent serve: 2 replicas, one Postgres, one vllm serve ({args.model})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("requests/s at concurrency 8: direct / OpenAIBackend / ttc-agent serve",
                  f"{over['requests_per_s_direct']:.3f} / {over['requests_per_s_backend']:.3f} / "
                  f"{over['requests_per_s_server']:.3f}")  # fmt: skip
    table.add_row("overhead of the decision layer", f"{over['overhead']:.1%}")
    table.add_row(
        "added latency p50 / p99", f"{over['added_latency_p50_s']:.2f} s / {over['added_latency_p99_s']:.2f} s"
    )
    table.add_row(f"requests answered / refused (402), {CLIENTS} clients",
                  f"{shared['requests_answered']} / {shared['requests_refused_402']}")  # fmt: skip
    table.add_row("sessions over budget", str(shared["sessions_over_budget"]))
    table.add_row("reservations left in the store", str(shared["reservations_left"]))
    console.print(table)
    data = {"model": args.model, "overhead": over, "budgets": shared}
    console.print(f"wrote {write_results('serve', data)}")
    refresh("serve")


def _markdown(model: str, over: dict[str, Any], shared: dict[str, Any]) -> str:
    return "\n".join(
        [
            "### ttc-agent serve (`benchmarks/serve.py`)",
            "",
            f"Two `ttc-agent serve` replicas sharing one Postgres, in front of one `vllm serve` of {model} "
            "(float32, 2 cores); the replicas count prompt tokens with the model's own tokenizer (`--tokenizer`).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| requests/s at concurrency 8, greedy: straight to vllm / the same request as ttc-agent sends it "
            f"(logprobs on) / through the replicas | {over['requests_per_s_direct']:.3f} / "
            f"{over['requests_per_s_backend']:.3f} / {over['requests_per_s_server']:.3f} "
            f"(overhead {over['overhead']:.1%}, of which the request shape {over['overhead_of_the_request_shape']:.1%}) |",
            f"| latency added per request, p50 / p99 | {over['added_latency_p50_s']:.2f} s / "
            f"{over['added_latency_p99_s']:.2f} s |",
            f"| {shared['clients']} clients in {shared['sessions']} sessions of {shared['session_max_tokens']} tokens: "
            f"answered / refused with 402 | {shared['requests_answered']} / {shared['requests_refused_402']} |",
            f"| sessions over budget | {shared['sessions_over_budget']} |",
            f"| reservations left in the store | {shared['reservations_left']} |",
        ]
    )


def doc_blocks(results: dict[str, Any]) -> dict[str, str]:
    """The docs' block of saved serve results."""
    return {"serve": _markdown(results["model"], results["overhead"], results["budgets"])}


if __name__ == "__main__":
    main()
