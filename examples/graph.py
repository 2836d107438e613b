"""The multi-step math agent as a module-level graph, for `langgraph dev` (see langgraph.json).

It runs on the embedded model with the probe bundle shipped in the package. Per-run settings
and a workflow budget go in the run's context, e.g. in LangGraph Studio:
``{"lambda_tokens": 0.001, "budget": {"max_tokens": 1500}}``.
"""

from ttc_agent.backends import TransformersBackend
from ttc_agent.demo import make_graph, shipped_probes
from ttc_agent.nodes import TTCEngine, TTCNode

_backend = TransformersBackend()
graph = make_graph(TTCNode(TTCEngine(_backend, shipped_probes(_backend))))
