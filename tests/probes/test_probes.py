"""Features, predictors, latency model and probe bundles on synthetic traces."""

import json

import numpy as np
import pytest
from fakes import MENU, synthetic_traces

from ttc_agent.errors import InvalidRequestError
from ttc_agent.probes import (
    AccuracyProbe,
    FeatureSet,
    LatencyModel,
    ProbeBundle,
    ProbeMismatchError,
    TextStats,
    TokenRegressor,
    TraceTable,
    split_ids,
)
from ttc_agent.probes.evaluate import evaluate
from ttc_agent.probes.metrics import auroc, ece, mape, mape_floor
from ttc_agent.strategies.menu import Menu


def test_text_stats_are_cheap_and_informative():
    X = TextStats().transform(["What is 3 + 4?", [{"role": "user", "content": "What is 345 + 678?"}]])
    assert X.shape == (2, TextStats.dim)
    cols = dict(zip(TextStats.columns, X.T, strict=True))
    assert cols["max_number_digits"].tolist() == [1, 3] and cols["plus"].tolist() == [1, 1]


def test_mape_floor_is_the_best_one_constant_per_group():
    seconds = np.array([10.0, 10.0, 30.0, 30.0, 5.0, 5.0])
    level = np.array([1, 1, 1, 1, 2, 2])
    # Level 1 is bimodal: its best constant, 10, is 200% off on the two slow runs.
    assert mape_floor(seconds, level) == pytest.approx((2 * 20 / 30) / 6)
    rng = np.random.default_rng(0)
    y, g = rng.lognormal(2, 0.6, 200), rng.integers(0, 4, 200)
    floor = mape_floor(y, g)
    for c in rng.uniform(1, 40, size=(300, 4)):  # no per-group constant does better
        assert mape(y, c[g]) >= floor - 1e-12
    assert mape_floor(y, np.zeros(200)) >= floor, "seeing less cannot lower the floor"
    with pytest.raises(InvalidRequestError, match="positive"):
        mape_floor(np.array([1.0, 0.0]), np.array([0, 0]))
    with pytest.raises(InvalidRequestError, match="one group per value"):
        mape_floor(np.array([1.0, 2.0]), np.array([0]))


def test_accuracy_probe_learns_a_calibrated_probability():
    table = TraceTable.from_records(synthetic_traces(), MENU.specs)
    X = TextStats().transform(table.prompts)
    idx, y = table.run_rows("greedy")
    probe = AccuracyProbe().fit(X[idx], y)
    p = probe.predict_proba(X[idx])[:, 1]
    assert auroc(y, p) > 0.8 and ece(y, p) < 0.1
    assert np.allclose(probe.predict_right(X[idx]), p)
    one_class = AccuracyProbe().fit(X[idx], np.ones_like(y))
    assert np.allclose(one_class.predict_right(X[:3]), 1.0) and list(one_class.classes_) == [1]
    never_right = AccuracyProbe().fit(X[idx], np.zeros_like(y))
    assert np.allclose(never_right.predict_right(X[:3]), 0.0)


def test_token_regressor_median_and_quantile():
    X = np.linspace(0, 1, 50).reshape(-1, 1)
    tokens = np.exp(2 + 3 * X[:, 0]) * np.random.default_rng(0).uniform(0.9, 1.1, 50)
    reg = TokenRegressor(alpha=0.01).fit(X, tokens)
    assert mape(tokens, reg.predict(X)) < 0.1
    assert (reg.predict_quantile(X, 0.9) >= reg.predict(X)).all()


def test_token_quantile_covers_new_queries_when_features_outnumber_queries():
    """With 150 features and 40 queries a weakly penalised ridge fit explains the noise
    in-sample; the q90 comes from leave-one-out residuals, so it still covers about 90% of
    queries it has never seen (a q90 from in-sample residuals would cover few)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1040, 150))
    tokens = np.exp(4 + 0.5 * X[:, 0] + rng.normal(0, 0.6, 1040))
    for alpha in (None, 1.0):
        reg = TokenRegressor(alpha=alpha).fit(X[:40], tokens[:40])
        coverage = float(np.mean(tokens[40:] <= reg.predict_quantile(X[40:], 0.9)))
        assert 0.8 <= coverage <= 0.97, (alpha, coverage)
    in_sample = float(np.std(np.log1p(tokens[:40]) - np.log1p(reg.predict(X[:40]))))
    assert in_sample < 0.1 < 0.5 < reg.sigma_, "in-sample residuals understate the spread; left-out ones do not"


def test_token_quantile_covers_single_runs_when_given_them():
    """A query's mean over runs varies less than one run: with ``runs`` the q90 covers a run."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2060, 3))
    runs = np.exp(4 + 0.5 * X[:, :1] + rng.normal(0, 0.5, (2060, 4)))
    means = runs.mean(axis=1)
    of_means = TokenRegressor().fit(X[:60], means[:60])
    of_runs = TokenRegressor().fit(X[:60], means[:60], runs=runs[:60])
    assert of_runs.sigma_ > 1.5 * of_means.sigma_
    coverage = float(np.mean(runs[60:, 0] <= of_runs.predict_quantile(X[60:], 0.9)))
    assert 0.8 <= coverage <= 0.97
    assert np.allclose(of_runs.predict(X[60:]), of_means.predict(X[60:])), "the median is the same fit"


def test_latency_model_recovers_a_linear_backend_and_extrapolates(tmp_path):
    rows = [
        {"prompt_tokens": p, "n": n, "tokens_per_sample": t, "seconds": 0.02 + 1e-4 * p + 0.07 * t + 0.004 * n * t}
        for p in (40, 400)
        for n in (1, 4, 16)
        for t in (10, 50)
    ]
    lat = LatencyModel.fit(rows)
    assert lat.round_seconds(100, 8, 30)[0] == pytest.approx(0.02 + 0.01 + 2.1 + 0.96, rel=1e-3)
    assert lat.seconds(100, 8, 8 * 30 * 3, 3)[0] == pytest.approx(3 * (0.02 + 0.01 + 2.1 + 0.96), rel=1e-3)
    lat.save(tmp_path / "lat.json")
    assert LatencyModel.load(tmp_path / "lat.json").weights == lat.weights
    with pytest.raises(InvalidRequestError, match="at least"):
        LatencyModel.fit(rows[:2])


def test_bundle_fits_predicts_and_round_trips(tmp_path):
    records = synthetic_traces()
    table = TraceTable.from_records(records, MENU.specs)
    train, test = split_ids(table.ids, 0.25)
    assert train and test and not set(train) & set(test)
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()]), fingerprint={"weights": "w1"}).fit(table.subset(train))
    metrics = evaluate(bundle, table.subset(test))
    for spec in MENU.specs:
        assert (
            metrics[spec]["auroc"] > 0.75
            and metrics[spec]["tokens_mape"] < 0.25
            and metrics[spec]["seconds_mape"] < 0.25
            and 0.75 <= metrics[spec]["tokens_q90_coverage"] <= 1.0
        )
    prompts = [[{"role": "user", "content": "What is 3 + 4?"}], [{"role": "user", "content": "What is 345 + 678?"}]]
    pred = bundle.predict(prompts, prompt_tokens=[40, 40])
    assert pred.accuracy.shape == (2, 2)
    assert pred.accuracy[0, 0] > pred.accuracy[1, 0], "the easy sum is predicted easier"
    assert pred.tokens[0, 1] > pred.tokens[0, 0], "best-of-4 is predicted to cost more tokens"
    assert (pred.tokens_q90 >= pred.tokens).all()
    bundle.save(tmp_path / "b")
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in (tmp_path / "b").iterdir())
    again = ProbeBundle.load(
        tmp_path / "b", menu=MENU, features=FeatureSet([TextStats()]), fingerprint={"weights": "w1"}
    )
    assert again.train_ids_ == [table.ids[i] for i in train], "the bundle remembers what it was trained on"
    assert again.calibration_.accuracy.shape == (len(train), 2)
    assert np.allclose(again.calibration_.tokens, bundle.calibration_.tokens)
    assert np.allclose(again.predict(prompts, [40, 40]).accuracy, pred.accuracy)


def test_a_bundle_saved_over_another_leaves_none_of_its_files(tmp_path):
    """Saving a one-strategy bundle without novelty or calibration over a two-strategy one: the
    older bundle's estimators, novelty and calibration are gone (load would have attached the
    stale novelty to the new bundle); files not of a bundle's making stay."""
    from ttc_agent.strategies.menu import Menu

    ProbeBundle(MENU, FeatureSet([TextStats()])).fit(synthetic_traces()).save(tmp_path / "b")
    assert {"novelty.npz", "calibration.npz", "s1-tokens.skops"} <= {f.name for f in (tmp_path / "b").iterdir()}
    (tmp_path / "b" / "notes.txt").write_text("mine")
    small = ProbeBundle(Menu(("greedy",), {"max_tokens": 64}), FeatureSet([TextStats()]))
    small.fit([r for r in synthetic_traces() if r["strategy"] == "greedy"])
    small.calibration_ = small.novelty_ = None
    small.save(tmp_path / "b")
    left = {f.name for f in (tmp_path / "b").iterdir()}
    assert left == {"bundle.json", "notes.txt"} | {f"s0-{h}.skops" for h in small.models_["greedy"]}
    loaded = ProbeBundle.load(tmp_path / "b")
    assert loaded.novelty_ is None and loaded.calibration_ is None and loaded.specs == ("greedy",)


def test_bundle_with_latency_model_predicts_seconds_from_tokens():
    rows = [
        {"prompt_tokens": 40, "n": n, "tokens_per_sample": t, "seconds": 0.05 + 0.07 * t * (1 + 0.1 * n)}
        for n in (1, 2, 4, 8)
        for t in (8, 16, 32, 64)
    ]
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()]), latency=LatencyModel.fit(rows)).fit(synthetic_traces())
    table = TraceTable.from_records(synthetic_traces(seed=1), MENU.specs)
    for m in evaluate(bundle, table).values():
        assert m["seconds_mape"] < 0.25


LATENCY_ROWS = [
    {"prompt_tokens": p, "n": n, "tokens_per_sample": t, "seconds": 0.05 + 1e-4 * p + 0.07 * t * (1 + 0.1 * n)}
    for p in (40, 80)
    for n in (1, 2, 4, 8)
    for t in (8, 16, 32, 64)
]


def _all_right_for_greedy(records):
    return [dict(r, correct=True) if r["strategy"] == "greedy" else r for r in records]


@pytest.mark.parametrize(
    ("calibrate", "latency", "relabel"),
    [(True, True, None), (False, False, None), (True, False, _all_right_for_greedy)],
    ids=["calibrated+latency", "plain+seconds-regressor", "one-class-probe"],
)
def test_linear_heads_give_the_estimators_predictions(tmp_path, calibrate, latency, relabel):
    records = synthetic_traces()
    records = relabel(records) if relabel else records
    lat = LatencyModel.fit(LATENCY_ROWS) if latency else None
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()]), latency=lat, calibrate=calibrate).fit(records)
    assert bundle.linear_ is not None, "the default predictors fold into one matrix"
    table = TraceTable.from_records(synthetic_traces(seed=3), MENU.specs)
    X, tokens = bundle.features.transform(table.prompts), table.prompt_tokens + np.arange(len(table.ids))
    fast = bundle.predict_features(X, tokens)
    linear, bundle.linear_ = bundle.linear_, None  # the estimator-by-estimator path
    each = bundle.predict_features(X, tokens)
    bundle.linear_ = linear
    for field in ("accuracy", "tokens", "tokens_q90", "completion_tokens", "seconds", "rounds"):
        assert np.allclose(getattr(fast, field), getattr(each, field), rtol=1e-9, atol=1e-9), field
    if relabel:
        assert np.allclose(fast.accuracy[:, 0], 1.0)
    bundle.save(tmp_path / "b")
    again = ProbeBundle.load(tmp_path / "b")
    assert again.linear_ is not None
    assert np.allclose(again.predict_features(X, tokens).accuracy, fast.accuracy)


def test_a_non_linear_probe_keeps_the_estimator_path():
    from sklearn.ensemble import RandomForestClassifier

    from ttc_agent.probes.linear import LinearHeads

    table = TraceTable.from_records(synthetic_traces(), MENU.specs)
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()])).fit(table)
    X = bundle.features.transform(table.prompts)
    idx, y = table.run_rows("greedy")
    forest = AccuracyProbe(estimator=RandomForestClassifier(n_estimators=5, random_state=0), calibrate=False)
    bundle.models_["greedy"]["accuracy"] = forest.fit(X[idx], y)
    bundle.linear_ = LinearHeads.compile(bundle.specs, bundle.models_)
    assert bundle.linear_ is None
    pred = bundle.predict_features(X, table.prompt_tokens)
    assert np.allclose(pred.accuracy[:, 0], forest.predict_proba(X)[:, 1])


def test_loading_a_mismatched_bundle_names_the_difference(tmp_path):
    ProbeBundle(MENU, FeatureSet([TextStats()]), fingerprint={"weights": "w1"}).fit(synthetic_traces()).save(tmp_path)
    with pytest.raises(ProbeMismatchError, match="menu"):
        ProbeBundle.load(tmp_path, menu=Menu(("greedy",)))
    with pytest.raises(ProbeMismatchError, match="features"):
        ProbeBundle.load(tmp_path, features=FeatureSet.from_names("text_stats,sentence_embedding"))
    with pytest.raises(ProbeMismatchError, match="model"):
        ProbeBundle.load(tmp_path, fingerprint={"weights": "other"})
    with pytest.raises(InvalidRequestError, match="bundle.json"):
        ProbeBundle.load(tmp_path / "nothing")


class Smuggled:
    """A type no bundle may contain."""

    def __init__(self):
        self.payload = "anything"


def test_a_bundle_smuggling_an_untrusted_type_is_refused(tmp_path):
    import skops.io as sio

    ProbeBundle(MENU, FeatureSet([TextStats()])).fit(synthetic_traces()).save(tmp_path)
    meta = json.loads((tmp_path / "bundle.json").read_text())
    sio.dump(Smuggled(), tmp_path / meta["files"]["greedy"]["accuracy"])
    with pytest.raises(ProbeMismatchError, match="trusted"):
        ProbeBundle.load(tmp_path)


def test_feature_config_round_trip_and_errors():
    fs = FeatureSet.from_names("text_stats,prompt_hidden_state")
    assert FeatureSet.from_config(fs.config()).config() == fs.config()
    assert fs.config()[1]["model"] is None, "no model named: the embedded one"
    named = FeatureSet.from_names("prompt_hidden_state, text_stats", model="qwen2.5-coder-0.5b").config()
    assert named == [
        {"kind": "prompt_hidden_state", "model": "qwen2.5-coder-0.5b", "layer": -8, "pooling": "mean"},
        {"kind": "text_stats"},
    ]
    with pytest.raises(InvalidRequestError, match="telepathy"):
        FeatureSet.from_names("telepathy")


@pytest.mark.slow
def test_sentence_embedding_and_hidden_state_features(embedded_dir):
    from ttc_agent.probes import PromptHiddenState, SentenceEmbedding

    prompts = ["What is 3 + 4?", "What is 3 + 5?", "Describe the history of Rome."]
    E = SentenceEmbedding().transform(prompts)
    assert E.shape == (3, 384) and np.allclose(np.linalg.norm(E, axis=1), 1)
    assert E[0] @ E[1] > E[0] @ E[2], "similar questions embed closer"
    h = PromptHiddenState(embedded_dir, layer=-8)
    H = h.transform(prompts)
    assert H.shape == (3, 576) and np.isfinite(H).all() and h.last_seconds > 0
    assert not np.allclose(H[0], H[2])


def test_text_stats_read_odd_number_runs():
    X = TextStats().transform(["Step 10.1.5.1.5 then 1,234.5 and 7"])
    cols = dict(zip(TextStats.columns, X[0], strict=True))
    assert cols["max_number_digits"] == 4 and np.isfinite(X).all()


def test_a_bundle_takes_another_accuracy_estimator_and_loads_it_only_when_trusted(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    table = TraceTable.from_records(synthetic_traces(), MENU.specs)
    forest = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()]), accuracy_estimator=forest).fit(table)
    probe = bundle.models_["greedy"]["accuracy"].model_
    assert "HistGradientBoosting" in repr(getattr(probe, "calibrated_classifiers_", [probe])[0].estimator)
    assert bundle.linear_ is None, "a non-linear probe predicts estimator by estimator"
    assert not hasattr(forest, "n_iter_"), "the estimator passed in is cloned, not fitted"
    bundle.save(tmp_path)
    with pytest.raises(ProbeMismatchError, match="TreePredictor.*trusted="):
        ProbeBundle.load(tmp_path)
    loaded = ProbeBundle.load(tmp_path, trusted=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"])
    X = bundle.features.transform(table.prompts)
    assert np.allclose(
        loaded.predict_features(X, table.prompt_tokens).accuracy,
        bundle.predict_features(X, table.prompt_tokens).accuracy,
    )


def test_an_accuracy_estimator_without_probabilities_is_refused():
    from sklearn.svm import LinearSVC

    with pytest.raises(InvalidRequestError, match="predict_proba.*LinearSVC"):
        AccuracyProbe(estimator=LinearSVC()).fit(np.eye(4), [0, 1, 0, 1])


def test_threads_deciding_their_first_calls_together_share_one_sentence_encoder():
    from concurrent.futures import ThreadPoolExecutor

    from ttc_agent.probes import SentenceEmbedding

    emb = SentenceEmbedding()
    with ThreadPoolExecutor(8) as pool:  # the load test found a race here: one load, one call at a time
        rows = list(pool.map(lambda i: emb.transform([f"What is {i} + 1?"] * (i + 1)), range(8)))
    assert [r.shape for r in rows] == [(i + 1, 384) for i in range(8)]
    np.testing.assert_allclose(rows[0][0], emb.transform(["What is 0 + 1?"])[0], atol=1e-5)


def test_a_round_decodes_until_its_longest_sample_ends():
    """Fitted on rounds whose samples end at different lengths, the model reads the longest as
    the decoding steps and the mean times n as the tokens generated; without the longest, every
    sample is taken to be as long as the mean."""
    from ttc_agent.probes.latency import LatencyModel

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        n, mean = int(rng.integers(1, 17)), float(rng.integers(10, 200))
        longest = mean * float(rng.uniform(1.0, 3.0)) if n > 1 else mean
        rows.append({"prompt_tokens": 50.0, "n": n, "tokens_per_sample": mean, "longest": longest,
                     "seconds": 0.5 + 0.1 * longest + 0.01 * n * mean})  # fmt: skip
    model = LatencyModel.fit(rows)
    assert model.weights[3] == pytest.approx(0.1, rel=1e-3) and model.weights[4] == pytest.approx(0.01, rel=1e-3)
    assert model.round_seconds(50, 8, 20, longest=100)[0] == pytest.approx(0.5 + 10 + 1.6, rel=1e-3)
    assert model.round_seconds(50, 8, 20)[0] == pytest.approx(0.5 + 2 + 1.6, rel=1e-3)
