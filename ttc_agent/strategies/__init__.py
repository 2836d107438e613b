"""Decoding strategies the policy chooses between: `Greedy`, `BestOfN`, `BeamSearch`, `AdaptiveSC`,
`DeepConf`, `TwoStage`.

Each has ``run(query, backend, verifier=None)`` and ``arun(...)`` returning an `Outcome` with
the chosen text and answer, every candidate with its score, and the exact `Cost`.
"""

from ttc_agent.costs import Cost
from ttc_agent.errors import LogprobsUnavailableError
from ttc_agent.strategies.adaptive import AdaptiveSC
from ttc_agent.strategies.base import (
    Candidate,
    Outcome,
    Query,
    Strategy,
    TokenBudgetError,
    as_query,
)
from ttc_agent.strategies.beam_search import BeamSearch
from ttc_agent.strategies.best_of_n import BestOfN
from ttc_agent.strategies.deepconf import DeepConf
from ttc_agent.strategies.greedy import Greedy
from ttc_agent.strategies.selection import SELECTIONS
from ttc_agent.strategies.spec import parse_strategy
from ttc_agent.strategies.two_stage import AgreementRule, Continuation, StageOne, TwoStage

__all__ = [
    "SELECTIONS",
    "AdaptiveSC",
    "AgreementRule",
    "BeamSearch",
    "BestOfN",
    "Candidate",
    "Continuation",
    "Cost",
    "DeepConf",
    "Greedy",
    "LogprobsUnavailableError",
    "Outcome",
    "Query",
    "StageOne",
    "Strategy",
    "TokenBudgetError",
    "TwoStage",
    "as_query",
    "parse_strategy",
]
