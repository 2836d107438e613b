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
    def _embedded_engine(self, tf_backend: Any) -> None:
        from ttc_agent.demo import shipped_probes

        if type(self).engine is None:
            type(self).engine = TTCEngine(tf_backend, shipped_probes(tf_backend))

    @property
    def chat_model_class(self) -> type[TTCChatModel]:
        return TTCChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"engine": type(self).engine}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": 64, "timeout": 120, "stop": []}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False
