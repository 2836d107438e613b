"""The embedded model on transformers: real generations with exact token accounting."""

import asyncio

import pytest
from conftest import CHAT

from ttc_agent.backends import TransformersBackend
from ttc_agent.errors import InvalidRequestError, ModelLoadError

pytestmark = pytest.mark.slow


def test_greedy_counts_are_exact(tf_backend):
    gen = tf_backend.generate(CHAT, max_tokens=24)
    c = gen.completions[0]
    assert c.text.strip(), "the model produced text"
    # The prompt count is the templated prompt's length, including the default system message.
    assert gen.prompt_tokens == tf_backend.count_tokens(CHAT)
    assert "SmolLM" in tf_backend.render(CHAT) and tf_backend.render(CHAT).endswith("assistant\n")
    # Re-tokenising the completion text gives back its token count (plus end-of-turn if it stopped).
    body = len(tf_backend.tokenizer(c.text, add_special_tokens=False)["input_ids"])
    assert c.num_tokens == body + (1 if c.finish_reason == "stop" else 0)
    assert gen.completion_tokens == c.num_tokens <= 24
    assert gen.seconds > 0


def test_greedy_is_deterministic_and_samples_are_one_batch(tf_backend):
    a = tf_backend.generate(CHAT, max_tokens=12).text
    b = tf_backend.generate(CHAT, max_tokens=12).text
    assert a == b
    gen = tf_backend.generate(CHAT, n=4, temperature=1.0, max_tokens=12, seed=7, logprobs=True)
    assert len(gen.completions) == 4
    assert gen.completion_tokens == sum(c.num_tokens for c in gen.completions)
    assert len({c.text for c in gen.completions}) > 1, "temperature 1 gives different samples"
    for c in gen.completions:
        assert len(c.token_logprobs) == c.num_tokens
        assert all(lp <= 0 for lp in c.token_logprobs)
        assert c.cumulative_logprob == pytest.approx(sum(c.token_logprobs))
    again = tf_backend.generate(CHAT, n=4, temperature=1.0, max_tokens=12, seed=7)
    assert [c.text for c in again.completions] == [c.text for c in gen.completions], "a seed reproduces samples"


def test_greedy_logprobs_are_the_argmax_of_raw_distribution(tf_backend):
    c = tf_backend.generate(CHAT, max_tokens=8, logprobs=True).completions[0]
    # Greedy picks the most likely token, so every log-probability is at least log(1/2) or the max.
    assert c.token_logprobs is not None and len(c.token_logprobs) == c.num_tokens
    assert max(c.token_logprobs) > -0.7


def test_stop_strings_cut_text_and_report_stop(tf_backend):
    gen = tf_backend.generate("Count: 1, 2, 3, 4, 5,", max_tokens=30, stop=[","])
    c = gen.completions[0]
    assert "," not in c.text and c.finish_reason == "stop" and c.stop_string == ","
    assert c.num_tokens < 30


def test_batch_of_partial_assistant_turns(tf_backend):
    partial = CHAT + [{"role": "assistant", "content": "Step 1: add the tens, 20 + 10 = 30."}]
    gen = tf_backend.generate([CHAT, partial], n=2, temperature=0.8, max_tokens=16, seed=1)
    assert len(gen.results) == 2 and all(len(r.completions) == 2 for r in gen.results)
    assert gen.results[1].prompt_tokens == tf_backend.count_tokens(partial)
    assert gen.results[1].prompt_tokens > gen.results[0].prompt_tokens
    # A continued turn is rendered open: no end-of-turn after the partial text.
    assert tf_backend.render(partial).endswith("20 + 10 = 30.")
    assert gen.prompt_tokens == sum(r.prompt_tokens for r in gen.results)


def test_deadline_stops_generation(tf_backend):
    gen = tf_backend.generate(CHAT, n=2, temperature=1.0, max_tokens=400, max_seconds=0.3, seed=3)
    assert all(c.finish_reason == "deadline" for c in gen.completions)
    assert all(c.num_tokens < 400 for c in gen.completions)
    assert gen.seconds < 2.0


def test_async_generate_shares_the_model(tf_backend):
    async def both():
        return await asyncio.gather(*(tf_backend.agenerate(CHAT, max_tokens=6) for _ in range(3)))

    gens = asyncio.run(both())
    assert len({g.text for g in gens}) == 1


def test_prompt_longer_than_context_is_refused_before_generation(tf_backend):
    with pytest.raises(InvalidRequestError, match="context"):
        tf_backend.generate("word " * 9000, max_tokens=4)


def test_unknown_model_path_names_it(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-model"):
        TransformersBackend(tmp_path / "no-such-model")


def test_fingerprint_identifies_the_weights(tf_backend):
    fp = tf_backend.fingerprint()
    assert fp["backend"] == "transformers" and len(fp["weights"]) == 16


def test_model_digest_ignores_the_transformers_version_that_saved_it(tmp_path):
    import json

    from ttc_agent.backends.fingerprint import model_digest

    for name, version in (("a", "5.19.0"), ("b", "5.19.1")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"hidden_size": 8, "transformers_version": version}))
        (folder / "model.safetensors").write_bytes(b"weights")
    assert model_digest(str(tmp_path / "a")) == model_digest(str(tmp_path / "b"))
    (tmp_path / "b" / "model.safetensors").write_bytes(b"other weights")
    model_digest.cache_clear()
    assert model_digest(str(tmp_path / "a")) != model_digest(str(tmp_path / "b"))
