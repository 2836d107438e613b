"""ttc-agent: latency- and token-aware test-time compute for every LLM call of a LangGraph agent.

The names most programs need, importable from the package root (each also lives in its
subpackage, where the docs introduce it):

    >>> from ttc_agent import TTCNode, TTCContext, WorkflowBudget, ProbeBundle, TransformersBackend

Backends and the LangChain faces load their heavy dependencies on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ttc_agent._lazy import lazy_getattr
from ttc_agent.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    InvalidRequestError,
    LogprobsUnavailableError,
    ModelIntegrityError,
    ModelLoadError,
    TTCError,
)

if TYPE_CHECKING:
    from ttc_agent.backends import (
        Backend,
        ChatModelBackend,
        OpenAIBackend,
        TransformersBackend,
        VLLMBackend,
        load_backend,
    )
    from ttc_agent.budgets import (
        BudgetExhausted,
        BudgetExhaustedError,
        BudgetState,
        EqualSplit,
        Paced,
        WorkflowBudget,
        budget_exhausted,
    )
    from ttc_agent.nodes import TTCChatModel, TTCContext, TTCEngine, TTCMiddleware, TTCNode, TTCSettings
    from ttc_agent.policy import CallLimits, StaticPolicy, UtilityPolicy
    from ttc_agent.probes import ProbeBundle
    from ttc_agent.strategies import AdaptiveSC, BeamSearch, BestOfN, DeepConf, Greedy, Outcome, parse_strategy
    from ttc_agent.strategies.menu import Menu

#: Public name -> the module that defines it (imported on first use).
_LAZY = {
    "Backend": "ttc_agent.backends",
    "ChatModelBackend": "ttc_agent.backends",
    "OpenAIBackend": "ttc_agent.backends",
    "TransformersBackend": "ttc_agent.backends",
    "VLLMBackend": "ttc_agent.backends",
    "load_backend": "ttc_agent.backends",
    "BudgetExhausted": "ttc_agent.budgets",
    "BudgetExhaustedError": "ttc_agent.budgets",
    "BudgetState": "ttc_agent.budgets",
    "EqualSplit": "ttc_agent.budgets",
    "Paced": "ttc_agent.budgets",
    "WorkflowBudget": "ttc_agent.budgets",
    "budget_exhausted": "ttc_agent.budgets",
    "Menu": "ttc_agent.strategies.menu",
    "TTCChatModel": "ttc_agent.nodes",
    "TTCContext": "ttc_agent.nodes",
    "TTCEngine": "ttc_agent.nodes",
    "TTCSettings": "ttc_agent.nodes",
    "TTCMiddleware": "ttc_agent.nodes",
    "TTCNode": "ttc_agent.nodes",
    "CallLimits": "ttc_agent.policy",
    "StaticPolicy": "ttc_agent.policy",
    "UtilityPolicy": "ttc_agent.policy",
    "ProbeBundle": "ttc_agent.probes",
    "AdaptiveSC": "ttc_agent.strategies",
    "BeamSearch": "ttc_agent.strategies",
    "BestOfN": "ttc_agent.strategies",
    "DeepConf": "ttc_agent.strategies",
    "Greedy": "ttc_agent.strategies",
    "Outcome": "ttc_agent.strategies",
    "parse_strategy": "ttc_agent.strategies",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "AdaptiveSC",
    "DeepConf",
    "Backend",
    "ChatModelBackend",
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "BeamSearch",
    "BestOfN",
    "BudgetExhausted",
    "BudgetExhaustedError",
    "BudgetState",
    "CallLimits",
    "EqualSplit",
    "Greedy",
    "InvalidRequestError",
    "LogprobsUnavailableError",
    "Menu",
    "ModelIntegrityError",
    "ModelLoadError",
    "OpenAIBackend",
    "Outcome",
    "Paced",
    "ProbeBundle",
    "StaticPolicy",
    "TTCChatModel",
    "TTCContext",
    "TTCEngine",
    "TTCError",
    "TTCMiddleware",
    "TTCNode",
    "TTCSettings",
    "TransformersBackend",
    "UtilityPolicy",
    "VLLMBackend",
    "WorkflowBudget",
    "budget_exhausted",
    "load_backend",
    "parse_strategy",
]
