"""Offline replay: the adaptive policy against statics and the oracle, on synthetic traces."""

import functools
import json

import numpy as np
import pytest
from fakes import MENU, synthetic_traces

from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.probe_training import cross_fit
from ttc_agent.evaluation.replay import Outcomes, menu_ablation, plot, replay
from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats, TraceTable, split_ids
from ttc_agent.probes.table import id_bucket


@functools.cache
def held_out():
    """Best-of-4 helps only on hard questions: the case per-query selection is for (fitted
    once; the tests only read it)."""
    # Enough repeats that measured accuracies are close to the true ones (matched-accuracy
    # comparisons are strict, so sampling noise alone can otherwise decide them).
    table = TraceTable.from_records(synthetic_traces(n=300, repeats=12, gain_easy=0.0, gain_hard=0.25), MENU.specs)
    train, test = split_ids(table.ids, 0.4)
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()])).fit(table.subset(train))
    held = table.subset(test)
    return held, bundle.predict(held.prompts, held.prompt_tokens)


def test_adaptive_policy_matches_best_static_for_less(tmp_path):
    held, pred = held_out()
    result = replay(held, pred, bootstrap=50)
    best = result["best_static"]
    assert best == "best_of_n(4, select=majority)"
    tok = result["tokens"]
    # Greedy on the easy half is as good as best-of-4: the adaptive policy reaches best-of-4's
    # accuracy for less (prompt tokens, paid by both, bound the saving).
    assert tok["cost_ratio_at_static_accuracy"] is not None and tok["cost_ratio_at_static_accuracy"] < 0.9
    assert tok["adaptive_accuracy_at_static_cost"] >= result["static"][best]["accuracy"]
    low, high = tok["ci95"]["gap_closed"]
    assert low <= tok["gap_closed"] <= high
    assert tok["oracle_accuracy_at_static_cost"] >= tok["adaptive_accuracy_at_static_cost"] - 1e-9
    assert (
        tok["ci95"]["adaptive_accuracy_at_static_cost"][0]
        <= tok["adaptive_accuracy_at_static_cost"]
        <= tok["ci95"]["adaptive_accuracy_at_static_cost"][1]
    )
    # Zero price: the adaptive policy picks the most accurate predicted strategy everywhere.
    assert tok["adaptive"][0]["lambda"] == 0.0
    assert set(result["choices_by_level"]) == {"0"}
    paths = plot(result, str(tmp_path / "pareto"))
    assert all((tmp_path / f"pareto.{e}").stat().st_size > 1000 for e in ("png", "svg")) and len(paths) == 2


def test_menu_ablation_shows_what_a_strategy_adds_at_equal_cost():
    held, pred = held_out()
    bo4 = "best_of_n(4, select=majority)"
    result = menu_ablation(held, pred, [bo4, "deepconf(n=16)"], bootstrap=50)
    assert result["without"] == [bo4]  # what is not on the menu is left out of the report
    for cost in ("tokens", "seconds"):
        r = result[cost]
        # Without best-of-4 only greedy is left: at best-of-4's cost the whole menu is more
        # accurate, it spends the budget on best-of-4 for the hard questions, and greedy closes
        # no gap to the oracle.
        assert r["difference"] > 0 and r["ci95_difference"][0] > 0
        assert r["with"]["adaptive_accuracy_at_static_cost"] - r["without"]["adaptive_accuracy_at_static_cost"] == (
            pytest.approx(r["difference"])
        )
        assert 0 < r["share_choosing_them"] < 1
        assert r["without"]["gap_closed"] <= 0 < r["with"]["gap_closed"]
        # The same at every static strategy's cost: at greedy's, nothing dearer is affordable.
        assert r["by_budget"][bo4]["difference"] == r["difference"]
        assert r["by_budget"]["greedy"]["share_choosing_them"] == 0


def test_menu_ablation_refuses_nothing_or_everything_to_take_off():
    held, pred = held_out()
    with pytest.raises(InvalidRequestError, match="none of .*adaptive_sc"):
        menu_ablation(held, pred, ["adaptive_sc(max_n=16)"], bootstrap=10)
    with pytest.raises(InvalidRequestError, match="leaves nothing"):
        menu_ablation(held, pred, list(pred.specs), bootstrap=10)


def test_outcomes_score_is_the_mean_of_the_chosen_cells():
    held, pred = held_out()
    out = Outcomes.from_table(held, pred.specs)
    chosen = np.zeros(len(held.ids), dtype=int)
    assert out.score(chosen)["tokens"] == out.tokens[:, 0].mean()


def write_trace_folder(folder, records):
    """A trace folder as `ttc-agent collect` writes it."""
    folder.mkdir()
    with (folder / "traces.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps({"schema": 1, **r}) + "\n")
    (folder / "meta.json").write_text(
        json.dumps({"schema": 1, "menu": MENU.to_dict(), "backend": {"backend": "synthetic"}, "dataset": "synthetic"})
    )
    return folder


def test_cross_fitting_predicts_every_problem_from_a_bundle_that_never_saw_it(tmp_path):
    traces = write_trace_folder(tmp_path / "traces", synthetic_traces(n=60, repeats=2))
    table, pred = cross_fit(traces, features="text_stats", folds=3)
    assert pred.accuracy.shape == (60, 2) and (pred.tokens > 0).all()
    fold = np.array([min(int(id_bucket(pid) * 3), 2) for pid in table.ids])
    train, test = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)
    alone = ProbeBundle(MENU, FeatureSet([TextStats()])).fit(table.subset(list(train)))
    held = table.subset(list(test))
    assert np.allclose(pred.accuracy[test], alone.predict(held.prompts, held.prompt_tokens).accuracy)
    hard = np.array([int(pid[1:]) % 2 == 1 for pid in table.ids])
    assert pred.accuracy[~hard, 0].mean() > pred.accuracy[hard, 0].mean() + 0.3, "out of fold, easy sums look easy"
    with pytest.raises(InvalidRequestError, match="folds"):
        cross_fit(traces, features="text_stats", folds=1)


def test_hidden_state_features_read_the_model_the_traces_were_collected_on(tmp_path, monkeypatch):
    from ttc_agent.evaluation.collect import traced_model_name
    from ttc_agent.probes import PromptHiddenState

    assert traced_model_name({"backend": {"source": {"name": "qwen2.5-coder-0.5b"}}}) == "qwen2.5-coder-0.5b"
    assert traced_model_name({"backend": {"backend": "vllm", "model": "SmolLM2-135M-Instruct"}}) is None
    assert traced_model_name({"backend": {"source": "not a mapping"}}) is None
    read_from: list[str | None] = []

    def fake_transform(self, prompts):  # stands in for the forward pass: which model, not its values
        read_from.append(self.model)
        return np.zeros((len(prompts), 2))

    monkeypatch.setattr(PromptHiddenState, "transform", fake_transform)
    traces = write_trace_folder(tmp_path / "traces", synthetic_traces(n=30, repeats=1))
    meta = json.loads((traces / "meta.json").read_text())
    meta["backend"]["source"] = {"name": "qwen2.5-coder-0.5b"}
    (traces / "meta.json").write_text(json.dumps(meta))
    cross_fit(traces, features="text_stats,prompt_hidden_state", folds=2)
    assert read_from == ["qwen2.5-coder-0.5b"]


def test_evaluate_command_replays_only_held_out_problems(tmp_path):
    from typer.testing import CliRunner

    from ttc_agent.cli import app

    traces = write_trace_folder(tmp_path / "traces", synthetic_traces(n=120, repeats=4, gain_easy=0.0, gain_hard=0.25))
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--traces", str(traces), "--out", str(tmp_path / "probes"), "--feature", "text_stats"]
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--traces",
            str(traces),
            "--probes",
            str(tmp_path / "probes"),
            "--out",
            str(tmp_path / "eval"),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    replayed = json.loads((tmp_path / "eval" / "replay.json").read_text())
    bundle_ids = set(json.loads((tmp_path / "probes" / "bundle.json").read_text())["train_ids"])
    assert replayed["queries"] == 120 - len(bundle_ids)
    assert (tmp_path / "eval" / "pareto.png").is_file() and (tmp_path / "eval" / "pareto.svg").is_file()
    assert "gap closed" in result.output


def test_priced_outcomes_score_the_policy_and_the_oracle_at_each_price():
    """Where a strategy's outcome depends on the price (a two-stage strategy deciding its second
    stage at it), the policy and the oracle are scored on ``priced(limits)``, the statics on the
    table."""
    from dataclasses import replace

    held, pred = held_out()
    base = Outcomes.from_table(held, pred.specs)
    seen = []

    def priced(limits):
        seen.append(limits)
        return replace(base, correct=np.zeros_like(base.correct))  # at any price, every strategy wrong

    result = replay(held, pred, bootstrap=20, lambdas=5, priced=priced)
    assert len(seen) == 2 * 6  # each cost's grid: zero and 5 prices
    assert {limits.lambda_seconds for limits in seen[:6]} == {0.0} and seen[6].lambda_tokens == 0.0
    for cost in ("tokens", "seconds"):
        assert all(p["accuracy"] == 0.0 for p in result[cost]["adaptive"] + result[cost]["oracle"])
    assert result["static"] == replay(held, pred, bootstrap=20, lambdas=5)["static"]  # statics from the table
    assert result["static"][result["best_static"]]["accuracy"] > 0
    assert result["tokens"]["adaptive_accuracy_at_static_cost"] == 0.0
