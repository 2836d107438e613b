"""Request validation shared by every backend: bad values raise typed errors naming them."""

import math

import pytest

from ttc_agent.backends import SamplingParams
from ttc_agent.backends.base import normalize_prompts, resolve_params
from ttc_agent.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 0),
        ("n", -3),
        ("n", 2.5),
        ("max_tokens", 0),
        ("temperature", -0.1),
        ("temperature", math.nan),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("max_seconds", 0),
        ("max_seconds", math.inf),
        ("seed", -1),
    ],
)
def test_bad_values_raise_naming_the_value(field, value):
    kwargs = {field: value}
    if field == "n":
        kwargs["temperature"] = 0.7
    with pytest.raises(InvalidRequestError, match=field):
        SamplingParams(**kwargs)


def test_many_greedy_samples_are_refused():
    with pytest.raises(InvalidRequestError, match="temperature"):
        SamplingParams(n=4, temperature=0)


def test_stop_string_becomes_tuple_and_empty_stop_is_refused():
    assert SamplingParams(stop="\n").stop == ("\n",)
    with pytest.raises(InvalidRequestError, match="stop"):
        SamplingParams(stop=["ok", ""])


def test_resolve_params_merges_and_rejects_unknown_keys():
    p = resolve_params(SamplingParams(max_tokens=5), {"temperature": 0.5})
    assert (p.max_tokens, p.temperature) == (5, 0.5)
    with pytest.raises(InvalidRequestError, match="tempreature"):
        resolve_params(None, {"tempreature": 0.5})


def test_single_prompts_and_batches_are_told_apart():
    chat = [{"role": "user", "content": "hi"}]
    assert len(normalize_prompts("hello")) == 1
    assert len(normalize_prompts(chat)) == 1
    assert len(normalize_prompts([chat, chat, "raw"])) == 3
    cont = normalize_prompts(chat + [{"role": "assistant", "content": "Step 1:"}])[0]
    assert cont.continues_assistant and not normalize_prompts(chat)[0].continues_assistant


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ([], "empty"),
        ([{"role": "user", "content": ""}], "no non-empty"),
        ([{"role": "wizard", "content": "hi"}], "wizard"),
        ([{"content": "hi"}], "role"),
        (42, "int"),
    ],
)
def test_bad_prompts_raise(prompt, needle):
    with pytest.raises(InvalidRequestError, match=needle):
        normalize_prompts(prompt)
