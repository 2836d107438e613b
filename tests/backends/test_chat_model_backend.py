"""`ChatModelBackend`: ttc-agent in front of an existing LangChain chat model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import CHAT
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from ttc_agent.backends.base import SamplingParams
from ttc_agent.backends.chat_model_backend import ChatModelBackend
from ttc_agent.errors import InvalidRequestError, LogprobsUnavailableError


def fake(*texts: str) -> GenericFakeChatModel:
    """A chat model without ``n`` or logprobs, answering with ``texts`` in turn."""
    replies = [AIMessage(t, usage_metadata={"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}) for t in texts]
    return GenericFakeChatModel(messages=iter(replies))


def test_a_model_without_n_gets_one_request_per_sample_and_usage_counts_tokens():
    backend = ChatModelBackend(fake("= 42", "= 42", "= 41"))
    gen = backend.generate(CHAT, SamplingParams(n=3, temperature=0.7, max_tokens=16))
    assert [c.text for c in gen.completions] == ["= 42", "= 42", "= 41"]
    assert [c.num_tokens for c in gen.completions] == [3, 3, 3] and gen.prompt_tokens == 9
    assert backend.fingerprint()["token_counts"] == "approximate"


def test_what_the_model_cannot_do_is_refused_with_a_typed_error_naming_it():
    backend = ChatModelBackend(fake("x"))
    with pytest.raises(LogprobsUnavailableError, match="GenericFakeChatModel"):
        backend.generate(CHAT, SamplingParams(logprobs=True))
    with pytest.raises(InvalidRequestError, match="partial assistant turn"):
        backend.generate([*CHAT, {"role": "assistant", "content": "23 + 19 ="}])
    with pytest.raises(InvalidRequestError, match="continue_final_message"):
        ChatModelBackend(fake("x"), continue_final_message="sglang")


@pytest.mark.slow
def test_chat_openai_on_a_real_vllm_serve(vllm_server, embedded_dir):
    from langchain_openai import ChatOpenAI
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    backend = ChatModelBackend(
        ChatOpenAI(base_url=vllm_server, api_key="EMPTY", model="smollm2", max_retries=0),
        count_tokens=lambda t: len(tokenizer.encode(t, add_special_tokens=False)),
        continue_final_message="vllm",
    )
    gen = backend.generate(CHAT, SamplingParams(n=3, temperature=0.8, max_tokens=16, logprobs=True, seed=1))
    assert len(gen.completions) == 3, "one request with n=3"
    assert all(c.token_logprobs and len(c.token_logprobs) == c.num_tokens for c in gen.completions)
    assert gen.completion_tokens == sum(c.num_tokens for c in gen.completions) > 0
    more = backend.generate([*CHAT, {"role": "assistant", "content": "23 + 19 ="}], SamplingParams(max_tokens=6))
    assert more.text and not more.text.startswith("23 + 19"), "the partial turn is continued, not restarted"


@pytest.mark.slow
def test_example_runs_a_budgeted_workflow_through_chat_openai(vllm_server):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    import chat_openai_budget

    from ttc_agent.budgets import WorkflowBudget

    engine = chat_openai_budget.make_engine(vllm_server)
    out = chat_openai_budget.solve(engine, "What is 12 + 7 + 30?", WorkflowBudget(max_tokens=1200))
    ledger = out["ttc_ledger"]
    assert len(out["steps"]) == 2 and ledger.calls == 2
    assert ledger.tokens == sum(s["tokens"] for s in out["steps"]) <= 1200
