"""Replay sample-based strategies from a trace pool, as if each had been run.

A strategy of the menu is replayed on a question from that question's pool (`pools`): greedy
from its greedy run, ``best_of_n(k, select=..., temperature=T)`` from the first ``k`` samples at
``T`` (majority, weighted majority, confident majority, or the highest free logprob score),
``adaptive_sc`` from successive batches of them until its Beta rule settles, ``deepconf``
offline: its warm-up samples set the floor, and each later sample is cut where one of its
recorded sliding-window means first falls below it (to within the pool's window stride), as
in-process vLLM cuts it online. Tokens come from the samples a strategy used; seconds from a
`LatencyModel` of the backend, round by round (batch size, prompt tokens, mean tokens per
sample, longest sample), since the pool's own calls batched several questions together.

The result is the whole-menu trace records `collect` writes (``replayed: true``), so probes,
policies and benchmarks read replayed and generated traces alike. Beam search grows partial
solutions step by step and cannot be replayed from whole samples: trace it with `collect`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.datasets import Problem
from ttc_agent.evaluation.pools import WINDOW_STRIDE
from ttc_agent.evaluation.records import trace_record
from ttc_agent.probes.bundle import ProbeBundle
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.strategies import (
    AdaptiveSC,
    BestOfN,
    Candidate,
    Cost,
    DeepConf,
    Greedy,
    Strategy,
    TwoStage,
    parse_strategy,
)
from ttc_agent.strategies.adaptive import majority_settled
from ttc_agent.strategies.selection import CONFIDENCE_WINDOW, majority, select
from ttc_agent.strategies.two_stage import Continuation, StageOne, stage_signals


class PoolTooSmallError(InvalidRequestError):
    """A strategy's replay needs more samples at a temperature than the pool holds."""


def _candidates(samples: Sequence[Mapping[str, Any]]) -> list[Candidate]:
    """Pool samples as candidates, scored as `LogprobVerifier` scores them (the free verifier)."""
    return [
        Candidate(
            text="",
            answer=s["answer"],
            score=None if s.get("mean_logprob") is None else math.exp(s["mean_logprob"]),
            num_tokens=int(s["tokens"]),
            finish_reason=s["finish"],
            confidence=s.get("confidence"),
        )
        for s in samples
    ]


def _cut_tokens(sample: Mapping[str, Any], floor: float) -> int | None:
    """Where in-process vLLM would have stopped ``sample`` under confidence floor ``floor``: the
    end of its first full window whose mean is below it (``None``: never below)."""
    means = sample.get("window_means") or []
    if sample["tokens"] < CONFIDENCE_WINDOW:
        return None  # a reply shorter than a window is judged whole, once it ends
    for i, mean in enumerate(means):
        if mean < floor:
            return min(CONFIDENCE_WINDOW + i * WINDOW_STRIDE, int(sample["tokens"]))
    return None


class _Round:
    """One replayed request: its samples' count and completion tokens."""

    def __init__(self, n: int, tokens: Sequence[int]) -> None:
        self.n, self.tokens = n, list(tokens)


def _take(
    pool: Mapping[float, list[Mapping[str, Any]]], t: float, k: int, spec: str, pid: str
) -> list[Mapping[str, Any]]:
    samples = pool.get(t, [])
    if len(samples) < k:
        raise PoolTooSmallError(
            f"{spec} needs {k} samples at temperature {t:g}, and the pool of {pid} holds {len(samples)}"
        )
    return list(samples[:k])


def _replay_one(
    strategy: Strategy,
    greedy: Mapping[str, Any],
    pool: Mapping[float, list[Mapping[str, Any]]],
    pid: str,
    latency: LatencyModel,
) -> tuple[Candidate, list[Mapping[str, Any]], list[_Round], str | None]:
    """The chosen candidate, the samples used, the rounds and the stop reason of one replay."""
    spec, t = strategy.spec, strategy.sampling.temperature
    prompt_tokens = int(greedy["prompt_tokens"])
    if isinstance(strategy, Greedy):
        (sample,) = greedy["samples"]
        return _candidates([sample])[0], [sample], [_Round(1, [sample["tokens"]])], None
    if isinstance(strategy, BestOfN):
        if strategy.verifier is not None and strategy.verifier.name != "logprob":
            raise InvalidRequestError(
                f"{spec} selects with the {strategy.verifier.name} verifier, which a pool does not record: trace it"
            )
        used = _take(pool, t, strategy.n, spec, pid)
        return (
            select(_candidates(used), strategy.select, strategy.keep),
            used,
            [_Round(len(used), [s["tokens"] for s in used])],
            None,
        )
    if isinstance(strategy, AdaptiveSC):
        samples = _take(pool, t, strategy.max_n, spec, pid)
        used, rounds, stop = [], [], "max_n"
        while len(used) < strategy.max_n:
            batch = samples[len(used) : len(used) + min(strategy.batch, strategy.max_n - len(used))]
            used += batch
            rounds.append(_Round(len(batch), [s["tokens"] for s in batch]))
            if majority_settled(_candidates(used)) >= strategy.threshold:
                stop = "converged"
                break
        return majority(_candidates(used)), used, rounds, stop
    if isinstance(strategy, DeepConf):
        samples = _take(pool, t, strategy.n, spec, pid)
        warm, rest = samples[: strategy.warmup], samples[strategy.warmup :]
        if any(s.get("confidence") is None for s in samples):
            raise InvalidRequestError(f"{spec} needs the samples' confidence, and the pool of {pid} has none")
        floor = float(np.quantile([s["confidence"] for s in warm], 1 - strategy.keep))
        cut = [_cut_tokens(s, floor) for s in rest]
        more = [
            dict(s, tokens=c, finish="low_confidence") if c is not None else s for s, c in zip(rest, cut, strict=True)
        ]
        kept = [s for s in rest if s["confidence"] >= floor]
        rounds = [_Round(len(warm), [s["tokens"] for s in warm]), _Round(len(more), [s["tokens"] for s in more])]
        return majority(_candidates([*warm, *kept])), [*warm, *more], rounds, "done"
    if isinstance(strategy, TwoStage):
        samples = _take(pool, t, strategy.k + strategy.more, spec, pid)
        stage = stage_one(samples[: strategy.k], strategy, prompt_tokens, latency)
        taken = strategy.options[strategy.continuation.choose(stage)]
        used = samples[: strategy.k + taken]
        rounds = [_Round(strategy.k, [s["tokens"] for s in used[: strategy.k]])]
        if taken:
            rounds.append(_Round(taken, [s["tokens"] for s in used[strategy.k :]]))
        return majority(_candidates(used)), used, rounds, "continued" if taken else "stopped"
    raise InvalidRequestError(
        f"{spec} cannot be replayed from a trace pool (beam search grows partial steps): trace it"
    )


def stage_one(
    samples: Sequence[Mapping[str, Any]], strategy: TwoStage, prompt_tokens: int, latency: LatencyModel
) -> StageOne:
    """What a two-stage strategy's continuation sees after drawing ``samples`` from a pool (their
    seconds from ``latency``)."""
    tokens = [s["tokens"] for s in samples]
    mean_tokens = float(np.mean(tokens))
    return StageOne(
        stage_signals(_candidates(samples), strategy.sampling.max_tokens),
        strategy.options,
        len(samples),
        prompt_tokens,
        mean_tokens,
        float(latency.round_seconds(prompt_tokens, len(samples), mean_tokens, max(tokens))[0]),
    )


def pool_latency(pool_records: Iterable[Mapping[str, Any]], backend: dict[str, Any] | None = None) -> LatencyModel:
    """A `LatencyModel` fitted on the pool's own backend calls: each call a round of all its
    questions' samples (prompt tokens summed, samples counted together)."""
    calls: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in pool_records:  # records drawn before calls had ids: one call per second and shape
        calls[r["call"].get("id") or f"{r['finished_at']}/{r['temperature']}/{r['call']['completion_tokens']}"].append(
            r
        )
    rows = []
    for group in calls.values():
        c = group[0]["call"]
        n = int(c["questions"]) * int(c["n"])
        if len(group) != int(c["questions"]):
            continue  # a call only partly written (killed mid-way): its shape is unknown
        rows.append({"prompt_tokens": float(sum(r["prompt_tokens"] for r in group)), "n": float(n),
                     "tokens_per_sample": c["completion_tokens"] / n, "seconds": float(c["seconds"]),
                     "longest": float(max(s["tokens"] for r in group for s in r["samples"]))})  # fmt: skip
    return LatencyModel.fit(rows, backend=backend)


def replay_pool(
    pool_records: Iterable[Mapping[str, Any]],
    specs: Sequence[str],
    latency: LatencyModel,
    continuation: Continuation | None = None,
    **defaults: Any,
) -> list[dict[str, Any]]:
    """Whole-menu trace records for ``specs`` (built with ``defaults``, e.g. the menu's),
    replayed from pool records (`read_pool`) question by question; two-stage strategies
    decide their second stage with ``continuation`` (their own default rule without one).

    Raises:
        PoolTooSmallError: a strategy needs more samples than a question's pool holds.
        InvalidRequestError: a strategy that cannot be replayed (beam search), or a question
            without its greedy run.
    """
    by_problem: dict[str, dict[float, Mapping[str, Any]]] = defaultdict(dict)
    for r in pool_records:
        by_problem[r["problem_id"]][float(r["temperature"])] = r
    strategies = [parse_strategy(s, **defaults) for s in specs]
    if continuation is not None:
        strategies = [s.with_continuation(continuation) if isinstance(s, TwoStage) else s for s in strategies]
    # Records carry the specs as given (a menu's, which spell out a temperature its defaults
    # would otherwise read as another; a strategy's own spec leaves out the default 0.7).
    out = []
    for pid, temps in by_problem.items():
        if 0.0 not in temps:
            raise InvalidRequestError(f"the pool of {pid} has no greedy run")
        greedy = temps[0.0]
        problem = Problem(
            pid, "", greedy["gold"], greedy["dataset"], greedy.get("level", 0), greedy.get("scope", "all")
        )
        pool = {t: list(r["samples"]) for t, r in temps.items() if t > 0}
        for spec, strategy in zip(specs, strategies, strict=True):
            if strategy.sampling.max_tokens != greedy["max_tokens"]:
                raise InvalidRequestError(
                    f"{strategy.spec} runs at max_tokens={strategy.sampling.max_tokens}, and the pool was drawn at "
                    f"{greedy['max_tokens']}: give the menu the pool's cap"
                )
            chosen, used, rounds, stop = _replay_one(strategy, greedy, pool, pid, latency)
            out.append(_record(problem, greedy, spec, chosen, used, rounds, stop, latency))
    return out


def _record(
    problem: Problem,
    greedy: Mapping[str, Any],
    spec: str,
    chosen: Candidate,
    used: Sequence[Mapping[str, Any]],
    rounds: Sequence[_Round],
    stop: str | None,
    latency: LatencyModel,
) -> dict[str, Any]:
    prompt = int(greedy["prompt_tokens"])
    completion = sum(int(s["tokens"]) for s in used)
    seconds = sum(
        float(latency.round_seconds(prompt, r.n, float(np.mean(r.tokens)), max(r.tokens))[0]) if r.tokens else 0.0
        for r in rounds
    )
    candidates = [
        {
            "answer": s["answer"],
            "score": None if s.get("mean_logprob") is None else math.exp(s["mean_logprob"]),
            "tokens": int(s["tokens"]),
            "finish": s["finish"],
            "confidence": s.get("confidence"),
            "correct": bool(s["correct"]),
        }
        for s in used
    ]
    cost = Cost(prompt * len(rounds), completion, 0, len(rounds), seconds).as_dict()
    return trace_record(problem, greedy["messages"], spec, chosen.answer, {**cost}, stop, candidates,
                        repeat=0, replayed=True)  # fmt: skip


def stage2_rows(
    pool_records: Iterable[Mapping[str, Any]], strategy: TwoStage, latency: LatencyModel
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Training rows for a two-stage strategy's stage-2 model from a pool: per question (with
    enough samples at the strategy's temperature), one `stage2_design` row per option, labelled
    whether the vote over the first ``k`` samples and that option's next ones is right; and
    the question of each row."""
    from ttc_agent.probes.stage2 import stage2_design

    by_problem: dict[str, dict[float, Mapping[str, Any]]] = defaultdict(dict)
    for r in pool_records:
        by_problem[r["problem_id"]][float(r["temperature"])] = r
    X, y, ids = [], [], []
    t, need = strategy.sampling.temperature, strategy.k + strategy.more
    for pid, temps in sorted(by_problem.items()):
        if t not in temps or 0.0 not in temps or len(temps[t]["samples"]) < need:
            continue
        greedy, samples = temps[0.0], temps[t]["samples"]
        gold = Problem(pid, "", greedy["gold"], greedy["dataset"], scope=greedy.get("scope", "all"))
        stage = stage_one(samples[: strategy.k], strategy, int(greedy["prompt_tokens"]), latency)
        X.append(stage2_design(stage.signals, strategy.options))
        y += [int(gold.is_correct(majority(_candidates(samples[: strategy.k + m])).answer)) for m in strategy.options]
        ids += [pid] * len(strategy.options)
    if not X:
        most = max((len(temps[t]["samples"]) for temps in by_problem.values() if t in temps), default=0)
        raise PoolTooSmallError(
            f"{strategy.spec} needs {need} samples at temperature {t:g}, and the pool's questions hold at most {most}"
        )
    return np.vstack(X), np.array(y), ids


def fit_stage2(bundle: ProbeBundle, pool_records: Sequence[Mapping[str, Any]], latency: LatencyModel) -> list[str]:
    """Fit the stage-2 model of every two-stage strategy on ``bundle``'s menu on the pool's
    questions the bundle was trained on (its held-out questions stay unseen); returns the specs
    fitted."""
    from ttc_agent.probes.stage2 import stage2_model

    trained = set(bundle.train_ids_)
    records = [r for r in pool_records if r["problem_id"] in trained]
    fitted = []
    for spec in bundle.specs:
        strategy = bundle.menu.strategy(spec)
        if isinstance(strategy, TwoStage):
            X, y, _ = stage2_rows(records, strategy, latency)
            if len(set(y)) < 2:
                raise InvalidRequestError(
                    f"every option of {spec} is {'right' if y[0] else 'wrong'} on the pool's {len(y) // len(strategy.options)} "
                    "training questions: nothing to learn when to continue from; pool more questions"
                )
            bundle.stage2_[spec] = stage2_model().fit(X, y)
            fitted.append(spec)
    return fitted
