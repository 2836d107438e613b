"""ttc-agent against its peers, side by side on one `vllm serve` of the reference model.

Every method answers the same held-out questions through the same server, one call at a time,
the methods taking turns question by question so that load and caching treat them alike. Two
tasks (``--task``): **arithmetic**, the reference model's four graded levels (none of them in the
traces or pools the shipped bundle was fitted on), and **gsm8k**, word problems from GSM8K's
test split (no fitting pool holds a test question). The methods:

- **baselines**, straight to vLLM: greedy, and majority@N (N samples at ``--temperature`` in one
  request, voted on their answers);
- **its-hub** 1.2.0: ``SelfConsistency`` (N samples) and ``AdaptiveSelfConsistency`` (up to 2N,
  doubling from 2 until 75% agree), voting on ttc-agent's own answer extraction;
- **optillm** 0.4.0, its proxy in front of vLLM: ``bon`` (N samples at its temperature 1, each
  rated by the model) and ``self_consistency`` (its 5 samples, clustered by text similarity);
- **ttc-agent serve** with the reference model's probe bundle, choosing per question at several
  token prices, and its own adaptive self-consistency forced (``model="ttc:adaptive_sc(...)"``).

Tokens are vLLM's own counts (its ``/metrics`` counters read before and after each call), so
every request a method makes (ratings, extra rounds) is counted; seconds are each call's wall
time. The peers run in a virtual environment of their own, outside the repository, built the
first time from ``benchmarks/requirements-peers.txt`` (``--venv``). Every call is appended to
benchmarks/results/peers[-gsm8k]-calls.jsonl as it ends, so a stopped run resumes where it
stopped (the same command again); the summary is over the questions every method answered.
Prints a table and writes benchmarks/results/peers.json (peers-gsm8k.json).

    .venv/bin/python -m benchmarks.peers [--per-level 6] [--n 8] [--prices 0,3e-4,1e-3]
    .venv/bin/python -m benchmarks.peers --task gsm8k --questions 40 [--prices 0,3e-4]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks._common import REPO, RESULTS, interleave, mean_interval, write_results  # noqa: E402
from benchmarks.docs import refresh  # noqa: E402
from ttc_agent.answers import answer_key, answers_equal, extract_answer  # noqa: E402
from ttc_agent.backends import VLLMServer  # noqa: E402
from ttc_agent.backends.models import named_model  # noqa: E402
from ttc_agent.backends.vllm_server import free_port, wait_until_ready  # noqa: E402
from ttc_agent.demo import SHIPPED_BUNDLES  # noqa: E402
from ttc_agent.evaluation.datasets import Problem, arithmetic, load_gsm8k  # noqa: E402
from ttc_agent.evaluation.pools import read_pool  # noqa: E402

GRADING = "qwen2.5-coder-0.5b"
TRACES = REPO / "benchmarks" / "traces" / "qwen-arithmetic"
POOL = REPO / "benchmarks" / "pools" / "qwen-arithmetic"
REQUIREMENTS = REPO / "benchmarks" / "requirements-peers.txt"
KEY = "bench-key"
#: Per task: the results file, the samples' temperature (the one ttc-agent's menu samples at for
#: word problems, where 0.7 hurts this model, docs/benchmarks.md "Temperatures") and token cap.
TASKS = {"arithmetic": ("peers", 0.7, 96), "gsm8k": ("peers-gsm8k", 0.5, 512)}
#: The word problems the target is judged on (issue #33); a run resumed across sessions holds fewer.
WORD_PROBLEMS = 40
_COUNTER = re.compile(r"^vllm:(generation|prompt)_tokens_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.MULTILINE)

#: A method answers a question with its reply text and what it chose (ttc-agent only).
Method = Callable[[Problem], tuple[str, str | None]]


def peers_venv(path: Path, console: Console) -> Path:
    """The peers' virtual environment at ``path``, built (or rebuilt when the pinned requirements
    changed) from ``benchmarks/requirements-peers.txt`` after the local CPU build of torch."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    marker = path / "ttc-peers-installed"
    if marker.is_file() and marker.read_text() == digest:
        return path
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    with console.status(f"building the peers' environment in {path} (a few minutes, once)..."):
        shutil.rmtree(path, ignore_errors=True)  # a build cut short is started again
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "--no-deps", "-r", str(REQUIREMENTS)], check=True)
    marker.write_text(digest)
    return path


def problems(per_level: int, seed: int) -> list[Problem]:
    """``per_level`` questions at each of the reference model's levels, levels taking turns,
    leaving out any question the probes' traces or the arithmetic pool hold."""
    traced = set()
    if (TRACES / "traces.jsonl").is_file():
        traced = {json.loads(line)["problem_id"] for line in (TRACES / "traces.jsonl").open()}
    if (POOL / "pool.jsonl").is_file():
        traced |= {r["problem_id"] for r in read_pool(POOL)}
    levels = []
    for lv in (1, 2, 3, 4):
        drawn = arithmetic(per_level=per_level + 20, levels=(lv,), seed=seed * 100 + lv, grading=GRADING)
        levels.append([p for p in drawn if p.id not in traced][:per_level])
    return interleave(levels)


def prompt(p: Problem) -> str:
    """The user message every method sends for ``p`` (its question and instruction)."""
    return p.messages()[-1]["content"]


def menu_adaptive_sc(probes: Path) -> str:
    """The adaptive self-consistency spec on the bundle's menu (forced as one of the rows)."""
    specs = json.loads((probes / "bundle.json").read_text())["menu"]["strategies"]
    return next(s for s in specs if s.startswith("adaptive_sc("))


def vllm_tokens(metrics_url: str) -> tuple[float, float]:
    """vLLM's running totals of (generated, prompt) tokens."""
    found = {"generation": 0.0, "prompt": 0.0}
    for kind, value in _COUNTER.findall(httpx.get(metrics_url, timeout=30).text):
        found[kind] += float(value)
    return found["generation"], found["prompt"]


def vote(texts: list[str], scope: str) -> str:
    """The first reply whose answer most replies share (ttc-agent's majority rule)."""
    keys = [answer_key(extract_answer(t, scope)) for t in texts]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return texts[0]
    top = counts.most_common(1)[0][0]
    return texts[keys.index(top)]


class ItsHub:
    """its-hub's algorithms in the peers' environment, one request a line (benchmarks/peers_runner.py)."""

    def __init__(
        self, venv: Path, base_url: str, model: str, n: int, max_tokens: int, temperature: float, scope: str
    ) -> None:
        cmd = [str(venv / "bin" / "python"), str(REPO / "benchmarks" / "peers_runner.py"), "--base-url", base_url,
               "--model", model, "--n", str(n), "--max-tokens", str(max_tokens), "--temperature", str(temperature),
               "--scope", scope]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def method(self, name: str) -> Method:
        def run(p: Problem) -> tuple[str, str | None]:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps({"method": name, "question": prompt(p)}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"its-hub's runner exited with {self.proc.wait()}")
            return json.loads(line)["text"], None

        return run

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def start(cmd: list[str], health: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A server process, once its ``health`` URL answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    wait_until_ready(proc, health, log, seconds=300)
    return proc


def methods(
    vllm: str,
    optillm: str,
    ttc: str,
    its_hub: ItsHub,
    n: int,
    max_tokens: int,
    prices: list[float],
    temperature: float,
    scope: str,
    adaptive_sc: str,
) -> dict[str, Method]:
    """Every method by its row name."""
    direct = openai.OpenAI(base_url=vllm, api_key="none", max_retries=0, timeout=1800)
    proxy = openai.OpenAI(base_url=optillm, api_key="none", max_retries=0, timeout=1800)
    server = openai.OpenAI(base_url=ttc, api_key=KEY, max_retries=0, timeout=1800)
    user = lambda p: [{"role": "user", "content": prompt(p)}]  # noqa: E731

    def greedy(p: Problem) -> tuple[str, str | None]:
        r = direct.chat.completions.create(model="m", messages=user(p), temperature=0, max_tokens=max_tokens)
        return r.choices[0].message.content or "", None

    def majority(p: Problem) -> tuple[str, str | None]:
        r = direct.chat.completions.create(
            model="m", messages=user(p), n=n, temperature=temperature, max_tokens=max_tokens
        )
        return vote([c.message.content or "" for c in r.choices], scope), None

    def optillm_approach(approach: str) -> Method:
        def run(p: Problem) -> tuple[str, str | None]:
            r = proxy.chat.completions.create(model=f"{approach}-m", messages=user(p), max_tokens=max_tokens)
            return r.choices[0].message.content or "", None

        return run

    def ttc_agent(settings: dict[str, float | str], model: str = "ttc") -> Method:
        def run(p: Problem) -> tuple[str, str | None]:
            ttc = {**settings, "answer_scope": scope}
            r = server.chat.completions.create(model=model, messages=user(p), extra_body={"ttc": ttc})
            return r.choices[0].message.content or "", (r.model_extra or {})["ttc"]["choice"]

        return run

    rows: dict[str, Method] = {
        "greedy": greedy,
        f"majority@{n}": majority,
        f"its-hub self-consistency@{n}": its_hub.method("sc"),
        f"its-hub adaptive self-consistency (up to {2 * n})": its_hub.method("adaptive_sc"),
        f"optillm bon@{n}": optillm_approach("bon"),
        "optillm self_consistency (5)": optillm_approach("self_consistency"),
    }
    # ttc-agent's own early-stopping sampler, forced, beside its-hub's on the same questions.
    rows["ttc-agent serve, adaptive_sc forced"] = ttc_agent({}, f"ttc:{adaptive_sc}")
    for price in prices:
        rows[f"ttc-agent serve, lambda_tokens={price:g}"] = ttc_agent({"lambda_tokens": price})
    return rows


def read_calls(path: Path, versions: Mapping[str, str] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The calls a run appended so far, by (method, question id), the latest of each; a line cut
    by a kill is skipped. With ``versions`` (method -> what it ran with, e.g. ttc-agent's probe
    bundle), only the calls made with a method's current version."""
    calls = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                call = json.loads(line)
            except json.JSONDecodeError:
                continue
            calls[call["method"], call["id"]] = call
    if versions is None:
        return calls
    return {k: c for k, c in calls.items() if c.get("version", "") == versions.get(k[0], "")}


def bundle_version(probes: Path) -> str:
    """A short digest of a probe bundle (its bundle.json names every file it holds)."""
    return hashlib.sha256((probes / "bundle.json").read_bytes()).hexdigest()[:12]


def ttc_versions(names: Iterable[str], probes: Path) -> dict[str, str]:
    """What each of ttc-agent's rows among ``names`` runs with: the bundle's digest (the peers'
    rows have none)."""
    version = bundle_version(probes)
    return {n: version for n in names if n.startswith("ttc-agent")}


def run_all(
    rows: dict[str, Method], qs: list[Problem], metrics: str, log: Path, versions: Mapping[str, str] | None = None
) -> None:
    """Each method on each question, methods taking turns (the order rotating per question),
    every call appended to ``log`` as it ends; calls ``log`` already holds are not made again,
    unless made with another version of the method (``versions``: ttc-agent's rows are asked
    again under a refitted bundle, the peers' calls kept)."""
    names = list(rows)
    versions = versions or {}
    done = read_calls(log, versions)
    with Progress() as progress, log.open("a+") as out:
        out.seek(0)
        if (text := out.read()) and not text.endswith("\n"):
            out.write("\n")  # end the line a kill cut, so the next call starts a line of its own
        task = progress.add_task("questions", total=len(qs))
        for i, p in enumerate(qs):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                if (name, p.id) in done:
                    continue
                gen0, prompt0 = vllm_tokens(metrics)
                started = time.perf_counter()
                try:
                    text, choice, error = *rows[name](p), None
                except (openai.APIError, RuntimeError, KeyError) as exc:  # counted wrong, and reported
                    text, choice, error = "", None, f"{type(exc).__name__}: {exc}"[:300]
                seconds = time.perf_counter() - started
                gen1, prompt1 = vllm_tokens(metrics)
                answer = extract_answer(text, p.scope)
                call = {
                    "method": name, "id": p.id, "level": p.level, "answer": answer,
                    "correct": answers_equal(answer, p.answer), "completion_tokens": gen1 - gen0,
                    "prompt_tokens": prompt1 - prompt0, "seconds": round(seconds, 3), "choice": choice, "error": error,
                    "version": versions.get(name, ""),
                }  # fmt: skip
                out.write(json.dumps(call) + "\n")
                out.flush()
            progress.advance(task)


def answered(
    log: Path, names: list[str], qs: list[Problem], versions: Mapping[str, str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per method, its calls (at its current version) on the questions every method has answered
    (in question order)."""
    calls = read_calls(log, versions or {})
    whole = [p.id for p in qs if all((name, p.id) in calls for name in names)]
    return {name: [{k: v for k, v in calls[name, pid].items() if k != "method"} for pid in whole] for name in names}


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per method: accuracy (with its interval), mean tokens and seconds, and ttc-agent's choices;
    then ttc-agent's cost against each other method at an accuracy at least as high."""
    rows = {}
    for name, calls in runs.items():
        right = np.array([c["correct"] for c in calls], dtype=float)
        rows[name] = {
            "accuracy": round(float(right.mean()), 4),
            "interval": mean_interval(right),
            "completion_tokens": round(float(np.mean([c["completion_tokens"] for c in calls])), 1),
            "prompt_tokens": round(float(np.mean([c["prompt_tokens"] for c in calls])), 1),
            "seconds": round(float(np.mean([c["seconds"] for c in calls])), 2),
            "by_level": {
                str(lv): round(float(np.mean([c["correct"] for c in calls if c["level"] == lv])), 3)
                for lv in sorted({c["level"] for c in calls})
            },
        }
        choices = Counter(c["choice"] for c in calls if c["choice"])
        if choices:
            rows[name]["choices"] = dict(choices.most_common())
        errors = [c["error"] for c in calls if c["error"]]
        if errors:
            rows[name]["errors"] = len(errors)
            rows[name]["first_error"] = errors[0]
    ours = {k: v for k, v in rows.items() if k.startswith("ttc-agent serve, lambda")}
    others = {k: v for k, v in rows.items() if k not in ours}
    against = {}
    for name, other in others.items():
        able = [(v["completion_tokens"], k) for k, v in ours.items() if v["accuracy"] >= other["accuracy"]]
        if not able:
            against[name] = None
            continue
        _, best = min(able)
        against[name] = {
            "ttc_agent_row": best,
            "token_ratio": round(ours[best]["completion_tokens"] / max(other["completion_tokens"], 1e-9), 3),
            "seconds_ratio": round(ours[best]["seconds"] / max(other["seconds"], 1e-9), 3),
        }
    peers = {k: v for k, v in others.items() if k.startswith(("its-hub", "optillm"))}
    top = max(peers, key=lambda k: (peers[k]["accuracy"], -peers[k]["completion_tokens"]))
    met = against.get(top) is not None and against[top]["token_ratio"] <= 0.5 and against[top]["seconds_ratio"] <= 1.0
    # The paired difference against the top peer: of the row that matches it, else of ttc-agent's
    # most accurate choosing row (the cheapest of equals).
    compared = (
        against[top]["ttc_agent_row"]
        if against.get(top)
        else max(ours, key=lambda k: (ours[k]["accuracy"], -ours[k]["completion_tokens"]))
    )
    ours_right = np.array([c["correct"] for c in runs[compared]], dtype=float)
    theirs = np.array([c["correct"] for c in runs[top]], dtype=float)
    paired = mean_interval(ours_right - theirs)
    return {
        "rows": rows,
        "against": against,
        "most_accurate_peer": top,
        "compared_row": compared,
        "accuracy_difference_interval": paired,
        "target_met": met,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="registered model name")
    parser.add_argument(
        "--probes", type=Path, help="probe bundle for ttc-agent serve (default: the one shipped for --model)"
    )
    parser.add_argument("--task", choices=sorted(TASKS), default="arithmetic", help="the questions asked")
    parser.add_argument("--per-level", type=int, default=6, help="questions per arithmetic level")
    parser.add_argument("--questions", type=int, default=40, help="GSM8K test questions (--task gsm8k)")
    parser.add_argument("--seed", type=int, default=11, help="question seed")
    parser.add_argument("--n", type=int, default=8, help="samples for majority, self-consistency and bon")
    parser.add_argument("--max-tokens", type=int, help="tokens per sample (default: 96 for arithmetic, 512 for gsm8k)")
    parser.add_argument("--temperature", type=float,
                        help="majority's and its-hub's sampling temperature (default: 0.7 for arithmetic, 0.5 for gsm8k)")  # fmt: skip
    parser.add_argument("--prices", default="0,3e-4,1e-3", help="ttc-agent's lambda_tokens, comma-separated")
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "ttc-agent" / "peers-venv",
                        help="the peers' virtual environment (built here if missing)")  # fmt: skip
    parser.add_argument("--resummarize", action="store_true",
                        help="recompute the summary, table and doc block from the calls in the task's results")  # fmt: skip
    args = parser.parse_args()
    console = Console()
    name, temperature, max_tokens = TASKS[args.task]
    temperature = args.temperature if args.temperature is not None else temperature
    max_tokens = args.max_tokens or max_tokens
    probes = args.probes or SHIPPED_BUNDLES[args.model]
    qs = problems(args.per_level, args.seed) if args.task == "arithmetic" else load_gsm8k("test", args.questions)
    scope = "first_result" if args.task == "arithmetic" else qs[0].scope
    log = RESULTS / f"{name}-calls.jsonl"
    if args.resummarize:
        if log.is_file():  # a run under way or stopped: what every method has answered so far
            names = list(dict.fromkeys(method for method, _ in read_calls(log)))
            runs = answered(log, names, qs, ttc_versions(names, probes))
            _publish(console, name, _data(args, name, temperature, max_tokens, probes, runs, args.venv))
        else:
            data = json.loads((RESULTS / f"{name}.json").read_text())
            data.update(summarize(data["calls"]))
            _publish(console, name, data)
        return
    venv = peers_venv(args.venv, console)
    prices = [float(p) for p in args.prices.split(",")]
    logs = Path("/tmp")
    with VLLMServer(args.model, served_name="m", log=logs / "peers-vllm.log") as vllm:
        procs, its_hub = [], None
        try:
            port = free_port()
            procs.append(start(
                [str(venv / "bin" / "optillm"), "--base-url", vllm.v1, "--port", str(port), "--best-of-n", str(args.n)],
                f"http://127.0.0.1:{port}/health", logs / "peers-optillm.log", {"OPENAI_API_KEY": "none"},
            ))  # fmt: skip
            optillm = f"http://127.0.0.1:{port}/v1"
            port = free_port()
            procs.append(start(
                [sys.executable, "-m", "ttc_agent.cli", "serve", "--backend", vllm.v1, "--model", "m",
                 "--tokenizer", args.model, "--port", str(port), "--max-tokens", str(max_tokens),
                 "--backend-timeout", "1800",
                 *(["--probes", str(args.probes)] if args.probes else [])],
                f"http://127.0.0.1:{port}/health", logs / "peers-ttc-serve.log", {"TTC_AGENT_API_KEYS": KEY},
            ))  # fmt: skip
            ttc = f"http://127.0.0.1:{port}/v1"
            its_hub = ItsHub(venv, vllm.v1, "m", args.n, max_tokens, temperature, scope)
            rows = methods(vllm.v1, optillm, ttc, its_hub, args.n, max_tokens, prices, temperature, scope,
                           menu_adaptive_sc(probes))  # fmt: skip
            versions = ttc_versions(rows, probes)
            run_all(rows, qs, vllm.url + "/metrics", log, versions)
        finally:
            if its_hub is not None:
                its_hub.close()
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
    runs = answered(log, list(rows), qs, versions)
    _publish(console, name, _data(args, name, temperature, max_tokens, probes, runs, venv))


def _data(
    args: argparse.Namespace,
    name: str,
    temperature: float,
    max_tokens: int,
    probes: Path,
    runs: dict[str, list[dict[str, Any]]],
    venv: Path,
) -> dict[str, Any]:
    """The results file's content: the run's settings, the summary and every call."""
    first = runs[next(iter(runs))]
    if not first:
        raise SystemExit(f"no question answered by every method yet in {RESULTS / name}-calls.jsonl")
    return {
        "task": args.task,
        "model": args.model,
        "model_sha256": named_model(args.model).sha256,
        "questions": len(first),
        "levels": sorted({c["level"] for c in first}),
        "n": args.n,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "probes": str(args.probes or probes.relative_to(REPO)),
        "probes_version": bundle_version(probes),
        "peer_versions": _peer_versions(venv),
        **summarize(runs),
        "calls": runs,
    }


def _publish(console: Console, name: str, data: dict[str, Any]) -> None:
    """Print the table, write benchmarks/results/NAME.json and its doc block."""
    _print(console, data["model"], data, data["questions"])
    console.print(f"wrote {write_results(name, data)}")
    refresh(name)


def _peer_versions(venv: Path) -> dict[str, str]:
    found = {}
    for line in subprocess.run([str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True).stdout.split():
        name, _, ver = line.partition("==")
        if name.lower().replace("_", "-") in ("its-hub", "optillm", "torch", "openai"):
            found[name] = ver
    return found


def _cells(name: str, row: dict[str, Any], against: dict[str, Any]) -> list[str]:
    lo, hi = row["interval"]
    vs = against.get(name)
    ratio = (
        "" if name not in against else "—" if vs is None else f"{vs['token_ratio']:.2f}x / {vs['seconds_ratio']:.2f}x"
    )
    return [name, f"{row['accuracy']:.3f} [{lo:.2f}, {hi:.2f}]", f"{row['completion_tokens']:.0f}",
            f"{row['seconds']:.1f}", ratio]  # fmt: skip


def _print(console: Console, model: str, summary: dict[str, Any], questions: int) -> None:
    what = "GSM8K test" if summary.get("task") == "gsm8k" else "arithmetic"
    table = Table(title=f"ttc-agent against its peers: {questions} {what} questions on {model}")
    for col in ("method", "accuracy [95% CI]", "completion tokens", "seconds", "ttc-agent's tokens / seconds"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, row in summary["rows"].items():
        table.add_row(*_cells(name, row, summary["against"]))
    console.print(table)
    for name, row in summary["rows"].items():
        if row.get("errors"):
            console.print(f"[red]{name}: {row['errors']} calls failed (counted wrong), e.g. {row['first_error']}[/red]")
    console.print(f"most accurate peer: {summary['most_accurate_peer']}; target met: {summary['target_met']}")


def _markdown(data: dict[str, Any]) -> str:
    if data.get("task") == "gsm8k":
        title = "### ttc-agent against its peers on word problems (`benchmarks/peers.py --task gsm8k`)"
        asked = (
            f"{data['questions']} GSM8K test questions (no fitting pool holds one), {data['max_tokens']} tokens a "
            f"sample, majority and its-hub sampling at temperature {data['temperature']:g}"
        )
    else:
        title = "### ttc-agent against its peers (`benchmarks/peers.py`)"
        asked = f"{data['questions']} held-out arithmetic questions ({len(data['levels'])} levels graded for {data['model']})"
    lines = [
        title,
        "",
        f"{asked}, one `vllm serve` (float32, 2 cores), each method's calls one at a time, the methods taking turns; "
        f"tokens are vLLM's own counts of what each method generated (ratings and extra rounds included), "
        f"seconds the wall time per question. Peers: "
        + ", ".join(f"{k} {v}" for k, v in data["peer_versions"].items() if k.lower() != "torch")
        + ". The last column is the cheapest of ttc-agent's choosing rows (the `lambda_tokens` ones) at least as "
        "accurate as that method: its tokens and seconds as a multiple of the method's (— when none is).",
        "",
        "| method | accuracy [95% CI] | completion tokens | seconds | ttc-agent's tokens / seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(_cells(n, r, data["against"])) + " |" for n, r in data["rows"].items()]
    top = data["most_accurate_peer"]
    lines += [
        f"- {name}: {row['errors']} calls failed and count as wrong (first: `{row['first_error']}`)"
        for name, row in data["rows"].items()
        if row.get("errors")
    ]
    verdict = "met" if data["target_met"] else "missed"
    if data.get("task") == "gsm8k" and data["questions"] < WORD_PROBLEMS:
        verdict = f"not judged yet ({data['questions']} of the {WORD_PROBLEMS} questions it is judged on; would read {verdict})"
    lines += [
        "",
        f"Most accurate peer: {top}. Target (its accuracy or better with at most half its tokens and no more of its seconds): "
        f"**{verdict}**" + f"; {data['compared_row']} minus {top}, paired accuracy difference 95% CI "
        f"{data['accuracy_difference_interval']}.",
    ]
    return "\n".join(lines)


def doc_blocks(results: dict[str, Any]) -> dict[str, str]:
    """The docs' block of saved peer results."""
    return {"peers-gsm8k" if results.get("task") == "gsm8k" else "peers": _markdown(results)}


if __name__ == "__main__":
    main()
