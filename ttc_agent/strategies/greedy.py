"""`Greedy`: one deterministic completion; the cheapest strategy."""

from __future__ import annotations

from typing import Any

from ttc_agent.backends.base import SamplingParams
from ttc_agent.strategies.base import Algorithm, Candidate, Choice, GenerateCall, Query, Strategy
from ttc_agent.verifiers import Verifier


class Greedy(Strategy):
    """Decode once at temperature 0 (one round, no verifier); a menu's default ``temperature``
    (for its sampling strategies) does not apply to it."""

    def __init__(self, *, max_tokens: int = 256, temperature: float = 0.0, **kwargs: Any) -> None:
        del temperature  # greedy decodes at 0 whatever the menu's default
        super().__init__(temperature=0.0, max_tokens=max_tokens, **kwargs)

    @property
    def spec(self) -> str:
        return "greedy"

    def _algorithm(self, query: Query, verifier: Verifier | None, params: SamplingParams) -> Algorithm:
        gen = yield GenerateCall([query.prompt], params.with_(n=1, temperature=0.0))
        c = gen.completions[0]
        chosen = Candidate(c.text, query.extract(c.text), None, c.num_tokens, c.finish_reason)
        return Choice(chosen, (chosen,))
