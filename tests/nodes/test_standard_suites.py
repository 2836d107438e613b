"""LangChain's own standard test suites for chat models, run on `TTCChatModel`.

The unit suite runs on a scripted backend; the integration suite on the embedded SmolLM2-135M
with the shipped probe bundle. Tests skipped or expected to fail are listed, with their
reasons, in docs/nodes.md ("Standard tests").
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes import ScriptedBackend, bundle_for, texts
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from ttc_agent.nodes import TTCChatModel, TTCEngine

_SCRIPTED = TTCEngine(ScriptedBackend(texts("= 5")), bundle_for(None))

#: Integration tests the embedded 135M model fails, and why (docs/nodes.md lists them too).
#: Each still runs; an unexpected pass is reported, not hidden.
EMBEDDED_MODEL_LIMITS = {
    "test_tool_choice": "choosing among several tools, SmolLM2-135M writes a tool name of its own",
    "test_bind_runnables_as_tools": "SmolLM2-135M repeats the tool's name as an argument value",
    "test_structured_output": "greedy SmolLM2-135M repeats itself and never closes a two-field object in 32 tokens",
    "test_agent_loop": "SmolLM2-135M never calls a tool unprompted (no tool_choice)",
}


class TestTTCChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[TTCChatModel]:
        return TTCChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"engine": _SCRIPTED}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # No api_key or max_retries: the backend holds credentials and retries (OpenAIBackend).
        return {"temperature": 0, "max_tokens": 100, "timeout": 60, "stop": []}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False  # the model is the engine's backend; another model needs another engine


@pytest.mark.slow
class TestTTCChatModelIntegration(ChatModelIntegrationTests):
    engine: TTCEngine | None = None

    @pytest.fixture(autouse=True)
    def _embedded_engine(self, tf_backend: Any, request: pytest.FixtureRequest) -> None:
        from ttc_agent.demo import shipped_probes

        if type(self).engine is None:
            type(self).engine = TTCEngine(tf_backend, shipped_probes(tf_backend))
        name = request.node.originalname
        reason = next((why for test, why in EMBEDDED_MODEL_LIMITS.items() if name.startswith(test)), None)
        if reason is not None:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=False))

    @property
    def chat_model_class(self) -> type[TTCChatModel]:
        return TTCChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Greedy decoding and short replies keep the suite to minutes on two cores; the unit
        # tests and tests/nodes/test_node.py cover the choice among strategies.
        return {"engine": type(self).engine, "temperature": 0, "max_tokens": 32}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": 32, "timeout": 120, "stop": []}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False
