"""Train a `LearnedVerifier` on the labelled candidates of trace folders and measure it on
held-out problems (what ``ttc-agent train-verifier`` runs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import read_traces
from ttc_agent.evaluation.rollouts import read_rollouts
from ttc_agent.probes import split_ids
from ttc_agent.probes.metrics import auroc
from ttc_agent.strategies import Candidate
from ttc_agent.strategies.selection import majority
from ttc_agent.verifiers.learned import CandidateEncoder, LearnedVerifier, examples_from_traces, prefixes_from_rollouts


@dataclass(frozen=True)
class VerifierReport:
    """A trained verifier and how it did on the held-out problems' runs."""

    verifier: LearnedVerifier
    held_out_runs: int
    held_out_problems: int
    candidates_fitted: int
    auroc: float | None  #: candidate-level AUROC of the verifier's scores
    select_by_verifier: float  #: share of runs where the top-scored candidate is right
    majority_vote: float  #: the same for a plain majority vote over the run's candidates
    pass_at_n: float  #: share of runs with at least one right candidate


def train_verifier_from_traces(
    traces: Sequence[str | Path],
    *,
    model: str | Path | None = None,
    layers: Sequence[int] | None = None,
    test_fraction: float = 0.3,
    process: bool = False,
) -> VerifierReport:
    """Fit a verifier on the candidates of ``traces`` (best-of-N runs), holding out
    ``test_fraction`` of the problems, and report its held-out metrics.

    With ``process``, it also trains on partial solutions labelled by rollouts (``ttc-agent
    collect --rollouts N``): a process reward model for beam search.

    Raises:
        InvalidRequestError: too few problems to hold any out, or ``process`` without rollouts.
    """
    records = [r for folder in traces for r in read_traces(folder)]
    questions, candidates, labels, ids = examples_from_traces(records)
    problems = sorted(set(ids))
    _, test_idx = split_ids(problems, test_fraction)
    test_ids = {problems[i] for i in test_idx}
    train = [i for i, pid in enumerate(ids) if pid not in test_ids]
    test = [i for i, pid in enumerate(ids) if pid in test_ids]
    if not train or not test:
        raise InvalidRequestError(f"{len(problems)} problems are too few to hold {test_fraction:.0%} out; collect more")
    fit_q = [questions[i] for i in train]
    fit_c = [candidates[i] for i in train]
    fit_y = [labels[i] for i in train]
    if process:
        rollouts = [r for folder in traces for r in read_rollouts(folder)]
        pq, pc, py, pids = prefixes_from_rollouts(rollouts, records)
        if not pq:
            raise InvalidRequestError("process training needs rollout labels: run `ttc-agent collect ... --rollouts 4`")
        keep = [i for i, pid in enumerate(pids) if pid not in test_ids]
        fit_q += [pq[i] for i in keep]
        fit_c += [pc[i] for i in keep]
        fit_y += [py[i] for i in keep]
    verifier = LearnedVerifier(CandidateEncoder(model, layers=layers), kind="process" if process else "outcome")
    verifier.fit(fit_q, fit_c, fit_y)
    scores = [verifier.score(questions[i], candidates[i]).values for i in test]
    y = np.array([v for i in test for v in labels[i]])
    p = np.array([s for row in scores for s in row])
    picked = [labels[i][int(np.argmax(s))] for i, s in zip(test, scores, strict=True)]
    by_vote = []
    for i in test:
        record = next(
            r
            for r in records
            if r["problem_id"] == ids[i] and [c.get("text") for c in r["candidates"]] == candidates[i]
        )
        cands = [Candidate("", c["answer"], c["score"], c["tokens"], c["finish"]) for c in record["candidates"]]
        by_vote.append(labels[i][cands.index(majority(cands))])
    return VerifierReport(
        verifier=verifier,
        held_out_runs=len(test),
        held_out_problems=len(test_ids),
        candidates_fitted=sum(len(c) for c in fit_c),
        auroc=auroc(y, p),
        select_by_verifier=float(np.mean(picked)),
        majority_vote=float(np.mean(by_vote)),
        pass_at_n=float(np.mean([any(labels[i]) for i in test])),
    )
