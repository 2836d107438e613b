"""What every strategy shares: queries, costs, outcomes, and the drivers that run them.

A strategy's algorithm is a generator that yields `GenerateCall` and `ScoreCall` requests and
receives their results. `Strategy.run` executes those requests synchronously and `Strategy.arun`
asynchronously, so each algorithm is written once, and both drivers account for its cost in the
same way: exact tokens from the backend and verifier, sequential rounds, wall-clock seconds.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ttc_agent.answers import extract_answer
from ttc_agent.backends.base import Backend, Generation, Prompt, SamplingParams, normalize_prompts
from ttc_agent.costs import Cost
from ttc_agent.errors import InvalidRequestError, LogprobsUnavailableError, TTCError
from ttc_agent.validation import POSITIVE_INT, Interval, check_param
from ttc_agent.verifiers import LogprobVerifier, Verifier, as_verifier, check_scores
from ttc_agent.verifiers.base import Scores


@dataclass(frozen=True)
class Query:
    """A question to answer: the prompt the model sees, the question text verifiers see, how
    to read the final answer out of a reply, and the caller's stop strings (a reply ends at the
    first one, which is not part of it)."""

    prompt: Prompt
    question: str
    extract: Callable[[str], str | None] = extract_answer
    stop: tuple[str, ...] = ()

    def continued(self, partial: str) -> Prompt:
        """The prompt with ``partial`` as the start of the assistant's reply."""
        if isinstance(self.prompt, str):
            return self.prompt + partial
        if not partial:
            return self.prompt
        return [*self.prompt, {"role": "assistant", "content": partial}]


def as_query(query: Any) -> Query:
    """A `Query` from a `Query`, a question string, chat messages, or a dataset `Problem`."""
    if isinstance(query, Query):
        return query
    if hasattr(query, "messages") and hasattr(query, "extract") and hasattr(query, "question"):
        return Query(prompt=query.messages(), question=query.question, extract=query.extract)
    if isinstance(query, str):
        normalize_prompts(query)  # raises on an empty question
        return Query(prompt=[{"role": "user", "content": query}], question=query)
    messages = normalize_prompts(query)[0].messages
    if not messages:
        raise InvalidRequestError(f"not a query: {query!r}")
    users = [m["content"] for m in messages if m["role"] == "user"]
    return Query(prompt=list(messages), question=users[-1] if users else messages[-1]["content"])


@dataclass(frozen=True)
class Candidate:
    """One candidate solution, its extracted answer and its verifier score (if any).

    ``confidence`` is the sample's lowest sliding-window mean token log-probability
    (`ttc_agent.strategies.selection.confidence`), when its token logprobs were returned.
    """

    text: str
    answer: str | None
    score: float | None
    num_tokens: int
    finish_reason: str
    confidence: float | None = None


@dataclass(frozen=True)
class Outcome:
    """A strategy's result: the chosen solution, every candidate, and the exact cost.

    ``answer`` is ``None`` when no candidate stated an extractable answer ("no answer").
    ``stop_reason`` says why a strategy that stops early stopped (``None`` for the others);
    ``stages`` what a two-stage strategy's first stage showed and which second stage it took.
    """

    strategy: str
    text: str
    answer: str | None
    candidates: tuple[Candidate, ...]
    cost: Cost
    stop_reason: str | None = None
    stages: dict[str, Any] | None = None

    @property
    def has_answer(self) -> bool:
        return self.answer is not None


@dataclass(frozen=True)
class GenerateCall:
    """A request for one batched backend call; ``require_logprobs``: the algorithm cannot work
    without token logprobs (a backend that returns none is refused with `LogprobsUnavailableError`)."""

    prompts: list[Prompt]
    params: SamplingParams
    require_logprobs: bool = False


@dataclass(frozen=True)
class ScoreCall:
    """A request to score solutions with the strategy's verifier."""

    question: str
    solutions: list[str]
    logprobs: list[Sequence[float] | None] | None = None


@dataclass(frozen=True)
class Choice:
    """What an algorithm returns: the chosen candidate, all candidates and, for strategies that
    may stop early, why they stopped (e.g. ``"converged"``, ``"max_n"``, ``"cut"``)."""

    chosen: Candidate
    candidates: tuple[Candidate, ...]
    stop_reason: str | None = None
    stages: dict[str, Any] | None = None


Algorithm = Generator[GenerateCall | ScoreCall, Any, Choice]


@dataclass
class _Meter:
    cost: Cost = field(default_factory=Cost)

    def generated(self, gen: Generation) -> Generation:
        self.cost = replace(
            self.cost,
            prompt_tokens=self.cost.prompt_tokens + gen.prompt_tokens,
            completion_tokens=self.cost.completion_tokens + gen.completion_tokens,
            rounds=self.cost.rounds + 1,
        )
        return gen

    def scored(self, call: ScoreCall, scores: Scores, name: str) -> Scores:
        values = check_scores(name, scores.values, len(call.solutions))
        self.cost = replace(
            self.cost,
            verifier_tokens=self.cost.verifier_tokens + scores.tokens,
            verifier_seconds=self.cost.verifier_seconds + scores.seconds,
        )
        return replace(scores, values=values)


#: The sampling temperature of a strategy whose spec names none.
DEFAULT_TEMPERATURE = 0.7
_TEMPERATURES = Interval(float, 0, 2, closed="both")


class Strategy(ABC):
    """A decoding strategy: one method with its budget (e.g. best-of-8 by majority vote).

    Sampling settings (``temperature``, ``top_p``, ``max_tokens``, ``seed``) are the strategy's
    own; ``run`` may set another per-sample ``max_tokens`` for one call (a caller's cap: higher
    or lower than the strategy's default), a deadline (``max_seconds``) and a cap on the call's
    total tokens (``max_total_tokens``), which is how a budget manager caps a call.
    """

    uses_verifier = False

    def __init__(
        self,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int | None = None,
        verifier: Any = None,
    ) -> None:
        check_param("temperature", temperature, _TEMPERATURES)
        self.sampling = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
        self.verifier = as_verifier(verifier)

    @property
    def temperature_spec(self) -> str:
        """The spec's temperature argument (``", temperature=0.3"``), empty at the default."""
        t = self.sampling.temperature
        return "" if t == DEFAULT_TEMPERATURE else f", temperature={t:g}"

    @property
    def deterministic(self) -> bool:
        """True when every run gives the same outcome (temperature 0), so one run tells all."""
        return self.sampling.temperature == 0.0

    @property
    @abstractmethod
    def spec(self) -> str:
        """The strategy as a spec string, e.g. ``best_of_n(8, select=majority)``."""

    @abstractmethod
    def _algorithm(self, query: Query, verifier: Verifier | None, params: SamplingParams) -> Algorithm:
        """The strategy's steps, as a generator of requests."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

    def _prepare(
        self, query: Any, verifier: Any, max_tokens: int | None, max_seconds: float | None
    ) -> tuple[Query, Verifier | None, SamplingParams]:
        q = as_query(query)
        v = as_verifier(verifier) or self.verifier
        if self.uses_verifier and v is None:
            v = LogprobVerifier()
        params = self.sampling
        if q.stop:
            params = params.with_(stop=(*params.stop, *q.stop))
        if max_tokens is not None:
            params = params.with_(max_tokens=max_tokens)
        if max_seconds is not None:
            params = params.with_(max_seconds=max_seconds)
        return q, (v if self.uses_verifier else None), params

    def run(
        self,
        query: Any,
        backend: Backend,
        verifier: Any = None,
        *,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        max_total_tokens: int | None = None,
    ) -> Outcome:
        """Answer ``query`` on ``backend``; ``verifier`` overrides the strategy's own.

        ``max_tokens`` caps each sample in place of the strategy's own cap (higher or lower:
        the caller's cap is the one the samples run with), ``max_seconds`` is the call's deadline, and
        ``max_total_tokens`` caps everything the call spends (prompt, completion and verifier
        tokens): each round's samples are shortened to fit what is left, a multi-round search
        stops early when the next round cannot fit, and `TokenBudgetError` is raised before any
        generation when not even the first round fits.
        """
        q, v, params = self._prepare(query, verifier, max_tokens, max_seconds)
        run = _Driver(self.spec, params, v, backend, max_total_tokens)
        algo = self._algorithm(q, v, params)
        reply: Any = None
        try:
            while True:
                call = algo.send(reply)
                if isinstance(call, GenerateCall):
                    p = run.fit(call)
                    reply = None if p is None else run.generated(call, backend.generate(call.prompts, p))
                else:
                    scorer = _scorer(v, self.spec)
                    scores = scorer.score(call.question, call.solutions, logprobs=call.logprobs, backend=backend)
                    reply = run.meter.scored(call, scores, scorer.name)
        except StopIteration as stop:
            return run.outcome(stop.value)
        except TTCError as exc:
            exc.spent = run.meter.cost
            raise

    async def arun(
        self,
        query: Any,
        backend: Backend,
        verifier: Any = None,
        *,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        max_total_tokens: int | None = None,
    ) -> Outcome:
        """Async ``run``: backend and verifier calls are awaited, so many queries interleave."""
        q, v, params = self._prepare(query, verifier, max_tokens, max_seconds)
        run = _Driver(self.spec, params, v, backend, max_total_tokens)
        algo = self._algorithm(q, v, params)
        reply: Any = None
        try:
            while True:
                call = algo.send(reply)
                if isinstance(call, GenerateCall):
                    p = run.fit(call)
                    reply = None if p is None else run.generated(call, await backend.agenerate(call.prompts, p))
                else:
                    scorer = _scorer(v, self.spec)
                    scores = await scorer.ascore(call.question, call.solutions, logprobs=call.logprobs, backend=backend)
                    reply = run.meter.scored(call, scores, scorer.name)
        except StopIteration as stop:
            return run.outcome(stop.value)
        except TTCError as exc:
            exc.spent = run.meter.cost
            raise


def _scorer(verifier: Verifier | None, spec: str) -> Verifier:
    if verifier is None:  # an algorithm asked to score without declaring uses_verifier
        raise InvalidRequestError(f"{spec} asked to score solutions but has no verifier")
    return verifier


class TokenBudgetError(InvalidRequestError):
    """Not even the first round of a strategy fits the call's total-token cap."""


class _Driver:
    """One run's meter, deadline and total-token cap."""

    def __init__(self, spec: str, params: SamplingParams, verifier: Any, backend: Backend, cap: int | None) -> None:
        check_param("max_total_tokens", cap, POSITIVE_INT, allow_none=True)
        self.spec, self.params, self.backend, self.cap = spec, params, backend, cap
        # A verifier that runs a model reads every solution again: reserve as much again.
        self.share = 2 if verifier is not None and getattr(verifier, "reads_tokens", True) else 1
        self.meter, self.started = _Meter(), time.perf_counter()

    def fit(self, call: GenerateCall) -> SamplingParams | None:
        """The call's parameters within the deadline and the token cap; ``None`` when a later
        round cannot fit (the algorithm then finishes with what it has)."""
        params = _with_deadline(call.params, self.params.max_seconds, self.started)
        if self.cap is None:
            return params
        prompt = sum(self.backend.count_tokens(p) for p in call.prompts)
        samples = len(call.prompts) * params.n
        room = (self.cap - self.meter.cost.total_tokens - self.share * prompt) // (self.share * samples)
        if room >= 1:
            return params.with_(max_tokens=min(params.max_tokens, room))
        if self.meter.cost.rounds == 0:
            raise TokenBudgetError(
                f"{self.spec} cannot fit max_total_tokens={self.cap}: its first round reads {prompt} prompt "
                f"tokens for {samples} sample(s)"
            )
        return None

    def generated(self, call: GenerateCall, gen: Generation) -> Generation:
        """Account for a generation, refusing one without the logprobs the call requires."""
        if call.require_logprobs and any(c.token_logprobs is None for r in gen.results for c in r.completions):
            raise LogprobsUnavailableError(
                f"{self.spec} needs token logprobs, and the backend {type(self.backend).__name__} "
                f"({getattr(self.backend, 'model_name', '?')}) returned none"
            )
        return self.meter.generated(gen)

    def outcome(self, choice: Choice) -> Outcome:
        return _outcome(self.spec, choice, self.meter.cost, time.perf_counter() - self.started)


def _with_deadline(params: SamplingParams, max_seconds: float | None, started: float) -> SamplingParams:
    """Give each round what is left of the call's deadline (at least a few milliseconds)."""
    if max_seconds is None:
        return params
    left = max(max_seconds - (time.perf_counter() - started), 0.005)
    return params.with_(max_seconds=left)


def _outcome(spec: str, choice: Choice, cost: Cost, seconds: float) -> Outcome:
    return Outcome(
        strategy=spec,
        text=choice.chosen.text,
        answer=choice.chosen.answer,
        candidates=choice.candidates,
        cost=replace(cost, seconds=seconds),
        stop_reason=choice.stop_reason,
        stages=choice.stages,
    )
