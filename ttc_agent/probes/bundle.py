"""`ProbeBundle`: every predictor for one menu, fitted from traces, saved safely.

For each strategy of the menu it holds an accuracy probe, token regressors (total and
completion tokens) and a rounds regressor; seconds come from a `LatencyModel` applied to the
predicted tokens (scaled per strategy by what the traces measured), or, without one, from a
regressor on the traced seconds.

A saved bundle is a folder: ``bundle.json`` (schema, menu, feature config, model fingerprint,
library versions, latency weights) and one ``.skops`` file per fitted estimator, loaded with an
explicit list of trusted types. Nothing is ever unpickled. Loading a bundle for another menu,
feature set or model raises `ProbeMismatchError` naming the difference.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc_agent.backends.base import Prompt
from ttc_agent.backends.fingerprint import same_model
from ttc_agent.errors import InvalidRequestError, TTCError
from ttc_agent.estimators.predictors import TOKENS_QUANTILE, AccuracyProbe, TokenRegressor
from ttc_agent.probes.features import FeatureSet
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.probes.length_cap import length_cuts, under_cap
from ttc_agent.probes.linear import LinearHeads
from ttc_agent.probes.novelty import NOVELTY_FILE, FeatureNovelty
from ttc_agent.probes.predictions import Predictions
from ttc_agent.probes.stage2 import Stage2Policy
from ttc_agent.probes.table import TraceTable
from ttc_agent.records import NoveltyRecord
from ttc_agent.strategies.menu import Menu
from ttc_agent.validation import POSITIVE_INT, check_param

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

BUNDLE_SCHEMA = 1
_TRUSTED = [
    "ttc_agent.estimators.predictors.AccuracyProbe",
    "ttc_agent.estimators.predictors.TokenRegressor",
    # Where they lived when the shipped bundles were saved (that module re-exports them).
    "ttc_agent.probes.predictors.AccuracyProbe",
    "ttc_agent.probes.predictors.TokenRegressor",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
]


class ProbeMismatchError(TTCError):
    """A probe bundle does not match the menu, features or model it is used with, or its files
    are damaged or unsafe to load (types outside the trusted list, paths outside its folder)."""


#: The files `ProbeBundle.save` writes besides bundle.json (estimators, stage-2 models, arrays).
_BUNDLE_FILE = re.compile(r"s\d+-\w+\.skops|stage2-\d+\.skops|calibration\.npz|" + re.escape(NOVELTY_FILE))


def batch_size(spec: str) -> int:
    """Samples per round of a strategy spec: 1, N, width x expand, adaptive_sc's batch, or the
    larger of deepconf's or two_stage's two rounds."""
    if m := re.match(r"best_of_n\((\d+)", spec):
        return int(m.group(1))
    if m := re.match(r"deepconf\(n=(\d+), warmup=(\d+)", spec):
        n, warmup = int(m.group(1)), int(m.group(2))
        return max(warmup, n - warmup)
    if m := re.match(r"adaptive_sc\(max_n=\d+, batch=(\d+)", spec):
        return int(m.group(1))
    if m := re.match(r"two_stage\(k=(\d+), more=(\d+)", spec):
        return max(int(m.group(1)), int(m.group(2)))
    if m := re.match(r"beam\(width=(\d+), expand=(\d+)", spec):
        return int(m.group(1)) * int(m.group(2))
    return 1


def most_samples(spec: str) -> tuple[int, int]:
    """The most samples a strategy spec may draw in all, and the most rounds (requests, each
    paying the prompt) it may take: what it can spend whatever its prompt."""
    if m := re.match(r"best_of_n\((\d+)", spec):
        return int(m.group(1)), 1
    if m := re.match(r"deepconf\(n=(\d+)", spec):
        return int(m.group(1)), 2
    if m := re.match(r"adaptive_sc\(max_n=(\d+), batch=(\d+)", spec):
        most, batch = int(m.group(1)), int(m.group(2))
        return most, -(-most // batch)
    if m := re.match(r"two_stage\(k=(\d+), more=(\d+)", spec):
        return int(m.group(1)) + int(m.group(2)), 2
    if m := re.match(r"beam\(width=(\d+), expand=(\d+), max_steps=(\d+)", spec):
        width, expand, steps = (int(g) for g in m.groups())
        return width * expand * steps, steps
    return 1, 1


def _inside(root: Path, name: str) -> Path:
    """``root / name``, refusing a name that leads outside ``root`` (a crafted bundle.json)."""
    file = (root / name).resolve()
    if not file.is_relative_to(root.resolve()):
        raise ProbeMismatchError(f"the bundle at {root} names a file outside its folder: {name!r}")
    return file


def _load_trusted(sio: Any, file: Path, allowed: Sequence[str]) -> Any:
    """One skops file, refusing types outside ``allowed`` and damaged files."""
    try:
        untrusted = [t for t in sio.get_untrusted_types(file=file) if t not in allowed]
        if untrusted:
            raise ProbeMismatchError(
                f"{file} contains types outside the trusted list: {untrusted} "
                "(pass them as trusted= only if you made this bundle)"
            )
        return sio.load(file, trusted=allowed)
    except (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError) as exc:
        raise ProbeMismatchError(f"{file} is damaged (truncated or not a skops file): {exc}") from exc


class ProbeBundle:
    """Predicts accuracy, tokens and seconds of every menu strategy for a query.

    Example:
        >>> bundle = ProbeBundle(menu, FeatureSet([TextStats()]), latency=LatencyModel.load("latency.json"))
        >>> bundle.fit(read_traces("traces/"))
        >>> preds = bundle.predict([messages], prompt_tokens=[backend.count_tokens(messages)])
        >>> bundle.save("probes/")

    ``accuracy_estimator`` replaces the accuracy probes' logistic regression with another
    unfitted scikit-learn classifier (each strategy's probe fits a clone); loading such a bundle
    needs its types passed as ``trusted``, and it predicts estimator by estimator instead of
    through the folded `LinearHeads`.
    """

    def __init__(
        self,
        menu: Menu,
        features: FeatureSet,
        *,
        latency: LatencyModel | None = None,
        fingerprint: dict[str, Any] | None = None,
        calibrate: bool = True,
        accuracy_estimator: BaseEstimator | None = None,
    ) -> None:
        self.menu, self.features, self.latency, self.fingerprint, self.calibrate = (
            menu,
            features,
            latency,
            fingerprint,
            calibrate,
        )
        self.accuracy_estimator = accuracy_estimator
        self.models_: dict[str, dict[str, Any]] = {}
        self.seconds_scale_: dict[str, float] = {}
        self.train_ids_: list[str] = []
        #: Per strategy, the mean samples per traced run that ended at the per-sample cap
        #: (``None`` for a bundle saved before they were recorded: every sample is assumed cut).
        self.length_cuts_: dict[str, float] | None = None
        #: Per two-stage strategy of the menu, its fitted stage-2 model (`stage2_model`), when
        #: the bundle was trained with a trace pool; without one it runs its default rule.
        self.stage2_: dict[str, Pipeline] = {}
        #: How far prompts lie from the training prompts (`FeatureNovelty`); ``None`` for a
        #: bundle fitted on too few prompts or saved before it was recorded.
        self.novelty_: FeatureNovelty | None = None
        self.calibration_: Predictions | None = None
        self.linear_: LinearHeads | None = None

    @property
    def specs(self) -> tuple[str, ...]:
        return self.menu.specs

    @cached_property
    def traced_max_tokens(self) -> tuple[int, ...]:
        """Each strategy's per-sample token cap in the traces (the menu's ``max_tokens``, else
        the strategy's default): what the token and seconds predictions describe unless a call
        asks for another cap."""
        return tuple(self.menu.strategy(s).sampling.max_tokens for s in self.specs)

    def fit(self, records: Sequence[dict[str, Any]] | TraceTable) -> ProbeBundle:
        """Fit every predictor on trace records (or a `TraceTable`)."""
        table = records if isinstance(records, TraceTable) else TraceTable.from_records(records, self.specs)
        X = self.features.transform(table.prompts)
        return self.fit_features(X, table)

    def fit_features(self, X: np.ndarray, table: TraceTable) -> ProbeBundle:
        """Fit on precomputed features ``X`` (one row per problem of ``table``)."""
        self.train_ids_ = list(table.ids)
        self.length_cuts_ = {spec: length_cuts(table.runs[spec]) for spec in self.specs}
        for spec in self.specs:
            idx, y = table.run_rows(spec)
            models = {
                "accuracy": AccuracyProbe(self.accuracy_estimator, calibrate=self.calibrate).fit(X[idx], y),
                "tokens": TokenRegressor().fit(
                    X, table.mean(spec, "total_tokens"), runs=table.values(spec, "total_tokens")
                ),
                "completion_tokens": TokenRegressor().fit(X, table.mean(spec, "completion_tokens")),
                "rounds": TokenRegressor().fit(X, table.mean(spec, "rounds")),
            }
            if self.latency is None:
                models["seconds"] = TokenRegressor().fit(X, table.mean(spec, "seconds"))
            else:
                # Scale the backend's latency model by what this strategy's traces measured
                # (verifier calls and batching effects the profile does not see).
                modelled = self.latency.seconds(
                    table.prompt_tokens,
                    batch_size(spec),
                    table.mean(spec, "completion_tokens"),
                    table.mean(spec, "rounds"),
                )
                self.seconds_scale_[spec] = float(np.median(table.mean(spec, "seconds") / np.maximum(modelled, 1e-6)))
            self.models_[spec] = models
        self.linear_ = LinearHeads.compile(self.specs, self.models_)
        self.novelty_ = FeatureNovelty().fit(X) if len(X) > FeatureNovelty.k else None
        # Predictions on the training problems: what `UtilityPolicy.calibrate` turns a target
        # mean cost into lambdas with.
        self.calibration_ = self.predict_features(X, table.prompt_tokens)
        return self

    def continuation(self, spec: str, lambda_tokens: float, lambda_seconds: float) -> Stage2Policy | None:
        """The stage-2 decision of two-stage strategy ``spec`` at a call's prices (``None``
        when the bundle has no stage-2 model for it)."""
        model = self.stage2_.get(spec)
        if model is None:
            return None
        return Stage2Policy(model, lambda_tokens, lambda_seconds, self.latency)

    def novelty(self, X: np.ndarray) -> NoveltyRecord | None:
        """How far the first prompt of features ``X`` lies from the training prompts, and whether
        beyond the calibrated threshold (``None`` when the bundle keeps no novelty)."""
        if self.novelty_ is None:
            return None
        score = float(self.novelty_.score(X[:1])[0])
        return {
            "score": round(score, 4),
            "threshold": round(self.novelty_.threshold_, 4),
            "novel": score > self.novelty_.threshold_,
        }

    def untrusted(
        self,
        pred: Predictions,
        where: np.ndarray | None = None,
        *,
        prompt_tokens: np.ndarray | None = None,
        max_tokens: int | None = None,
    ) -> Predictions:
        """``pred`` for prompts out of distribution: each strategy's accuracy is its mean over the
        training prompts (what the bundle knows without trusting what it reads in the prompt),
        so the policy picks the strategy that pays best on average at the call's prices; costs
        stay predicted from the prompt. ``where`` (one flag per query, e.g. `FeatureNovelty.
        is_novel`) limits this to the flagged queries; by default every query.

        With ``prompt_tokens`` (one count per query), the flagged queries' q90 tokens (what hard
        checks and a workflow budget's reservation read) also rise to the most each strategy can
        spend (`most_samples` samples at ``max_tokens``, or each strategy's traced cap, and the
        prompt once a round): the token probes' spread, learnt in distribution, does not bound
        a prompt unlike theirs, so a budgeted call reserves enough to finish or picks a
        strategy whose worst case fits."""
        flagged = np.ones(len(pred.accuracy), bool) if where is None else np.asarray(where, bool)
        if prompt_tokens is not None:
            most = self.most_tokens(prompt_tokens, max_tokens)
            pred = replace(
                pred, tokens_q90=np.where(flagged[:, None], np.maximum(pred.tokens_q90, most), pred.tokens_q90)
            )
        if self.calibration_ is None:
            return pred
        prior = np.broadcast_to(self.calibration_.accuracy.mean(axis=0), pred.accuracy.shape)
        return replace(pred, accuracy=np.where(flagged[:, None], prior, pred.accuracy))

    def held_out(self, table: TraceTable) -> TraceTable:
        """The problems of ``table`` this bundle was not trained on."""
        trained = set(self.train_ids_)
        return table.subset([i for i, pid in enumerate(table.ids) if pid not in trained])

    def most_tokens(self, prompt_tokens: np.ndarray, max_tokens: int | None = None) -> np.ndarray:
        """The most each strategy can generate on each query (queries x strategies): total tokens
        from `most_samples` at ``max_tokens`` (else each strategy's traced cap) with the prompt
        paid once a round. A strategy that scores its candidates with a verifier
        (`Strategy.uses_verifier`) may spend verifier tokens beyond this, and beam search
        re-reads its partial solutions: for those it is a floor."""
        caps = np.array(self.traced_max_tokens if max_tokens is None else [max_tokens] * len(self.specs), float)
        samples, rounds = (np.array(x, dtype=float) for x in zip(*map(most_samples, self.specs), strict=True))
        return np.asarray(samples * caps + rounds * np.asarray(prompt_tokens, dtype=float).reshape(-1, 1))

    def predict(
        self, prompts: Sequence[Prompt], prompt_tokens: Sequence[int] | np.ndarray, *, max_tokens: int | None = None
    ) -> Predictions:
        """Predictions for each prompt (``prompt_tokens``: their exact token counts; ``max_tokens``:
        the per-sample cap the call runs with, when not the traced one)."""
        return self.predict_features(
            self.features.transform(prompts), np.asarray(prompt_tokens, dtype=float), max_tokens=max_tokens
        )

    def predict_features(
        self, X: np.ndarray, prompt_tokens: np.ndarray, *, max_tokens: int | None = None
    ) -> Predictions:
        """Predictions from precomputed features ``X`` (one row per query).

        ``max_tokens`` is the per-sample cap the strategies run with; where it differs from a
        strategy's traced cap (`traced_max_tokens`), its tokens and seconds are predicted under
        the new cap (`ttc_agent.probes.length_cap`). Linear predictors (the default) are
        evaluated as one matrix product (`LinearHeads`); others estimator by estimator.
        """
        if not self.models_:
            raise InvalidRequestError("this ProbeBundle is not fitted: call fit() or ProbeBundle.load()")
        out = self._heads_each(X) if self.linear_ is None else self.linear_.predict(X)
        out["rounds"] = np.maximum(out["rounds"], 1)
        sizes = np.array([batch_size(s) for s in self.specs], dtype=float)
        traced = self.traced_max_tokens
        if max_tokens is not None and any(t != max_tokens for t in traced):
            check_param("max_tokens", max_tokens, POSITIVE_INT)
            completion = out["completion_tokens"]
            samples = sizes * out["rounds"]
            cuts = samples if self.length_cuts_ is None else np.array([self.length_cuts_[s] for s in self.specs])
            out = under_cap(out, traced, max_tokens, cuts, samples)
            if self.latency is None:  # regressed seconds: they grow with the completion tokens
                out["seconds"] = out["seconds"] * out["completion_tokens"] / np.maximum(completion, 1.0)
        if self.latency is not None:
            scale = np.array([self.seconds_scale_[s] for s in self.specs])
            p = np.asarray(prompt_tokens, dtype=float).reshape(-1, 1)
            out["seconds"] = scale * self.latency.seconds(p, sizes, out["completion_tokens"], out["rounds"])
        return Predictions(self.specs, **{k: out[k] for k in Predictions.FIELDS})

    def _heads_each(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """What `LinearHeads.predict` gives, estimator by estimator (queries x strategies each)."""
        heads = ("tokens", "completion_tokens", "rounds") + (("seconds",) if self.latency is None else ())
        out = {h: np.column_stack([self.models_[s][h].predict(X) for s in self.specs]) for h in heads}
        out["tokens_q90"] = np.column_stack(
            [self.models_[s]["tokens"].predict_quantile(X, TOKENS_QUANTILE) for s in self.specs]
        )
        out["accuracy"] = np.column_stack([self.models_[s]["accuracy"].predict_right(X) for s in self.specs])
        return out

    # -- persistence ----------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the bundle folder (JSON metadata plus skops files); never pickles."""
        import skops.io as sio

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, dict[str, str]] = {}
        for i, spec in enumerate(self.specs):
            files[spec] = {}
            for name, model in self.models_[spec].items():
                fname = f"s{i}-{name}.skops"
                sio.dump(model, out / fname)
                files[spec][name] = fname
        stage2 = {}
        for spec, model in self.stage2_.items():
            fname = f"stage2-{self.specs.index(spec)}.skops"
            sio.dump(model, out / fname)
            stage2[spec] = fname
        meta = {
            "schema": BUNDLE_SCHEMA,
            "menu": self.menu.to_dict(),
            "features": self.features.config(),
            "fingerprint": self.fingerprint,
            "latency": None
            if self.latency is None
            else {"weights": self.latency.weights, "backend": self.latency.backend},
            "seconds_scale": self.seconds_scale_,
            "length_cuts": self.length_cuts_,
            "stage2": stage2,
            "train_ids": self.train_ids_,
            "files": files,
            "versions": {p: version(p) for p in ("ttc-agent", "scikit-learn", "skops", "numpy")},
        }
        (out / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
        written = {f for names in files.values() for f in names.values()} | set(stage2.values())
        if self.calibration_ is not None:
            arrays = {k: getattr(self.calibration_, k) for k in Predictions.FIELDS}
            np.savez(out / "calibration.npz", **arrays)
            written.add("calibration.npz")
        if self.novelty_ is not None:
            self.novelty_.save(out)
            written.add(NOVELTY_FILE)
        # A bundle saved over another leaves none of the other's files, which load() would read
        # (its novelty or calibration) or which would sit unreferenced (its other strategies').
        for stale in out.iterdir():
            if _BUNDLE_FILE.fullmatch(stale.name) and stale.name not in written:
                stale.unlink()
        return out

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        menu: Menu | None = None,
        features: FeatureSet | None = None,
        fingerprint: dict[str, Any] | None = None,
        trusted: Sequence[str] = (),
    ) -> ProbeBundle:
        """Read a bundle folder, checking it against the menu, features and model it will serve.

        ``trusted`` adds type names (as the error for an untrusted file lists them) to the types
        the skops files may hold: needed for a bundle fitted with another ``accuracy_estimator``
        than the default logistic regression, and only for files you made yourself.
        """
        import skops.io as sio

        root = Path(folder)
        path = root / "bundle.json"
        if not path.is_file():
            raise InvalidRequestError(f"no probe bundle at {str(root)!r} (bundle.json missing)")
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProbeMismatchError(
                f"{path} is damaged (not valid JSON: {exc}); train or copy the bundle again"
            ) from exc
        if not isinstance(meta, dict):
            raise ProbeMismatchError(f"{path} is not a probe bundle's description")
        if meta.get("schema") != BUNDLE_SCHEMA:
            raise ProbeMismatchError(
                f"{root} has bundle schema {meta.get('schema')!r}; this ttc-agent reads {BUNDLE_SCHEMA}"
            )
        saved_menu = Menu.from_dict(meta["menu"])
        if menu is not None and menu.to_dict() != saved_menu.to_dict():
            raise ProbeMismatchError(
                f"the bundle at {root} was trained for menu {list(saved_menu.specs)} (defaults {saved_menu.defaults}), not {list(menu.specs)} (defaults {menu.defaults})"
            )
        if features is not None and features.config() != meta["features"]:
            raise ProbeMismatchError(f"the bundle at {root} uses features {meta['features']}, not {features.config()}")
        if same_model(fingerprint, meta.get("fingerprint")) is False:
            raise ProbeMismatchError(
                f"the bundle at {root} was trained on model {meta['fingerprint']}, not {fingerprint}"
            )
        latency = (
            None
            if meta["latency"] is None
            else LatencyModel(tuple(meta["latency"]["weights"]), meta["latency"]["backend"])
        )
        bundle = cls(
            saved_menu,
            features or FeatureSet.from_config(meta["features"]),
            latency=latency,
            fingerprint=meta.get("fingerprint"),
        )
        bundle.seconds_scale_ = {k: float(v) for k, v in meta["seconds_scale"].items()}
        bundle.train_ids_ = list(meta.get("train_ids", []))
        cuts = meta.get("length_cuts")
        bundle.length_cuts_ = None if cuts is None else {k: float(v) for k, v in cuts.items()}
        allowed = [*_TRUSTED, *trusted]
        for spec, files in meta["files"].items():
            bundle.models_[spec] = {}
            for name, fname in files.items():
                bundle.models_[spec][name] = _load_trusted(sio, _inside(root, fname), allowed)
        for spec, fname in (meta.get("stage2") or {}).items():
            bundle.stage2_[spec] = _load_trusted(sio, _inside(root, fname), allowed)
        bundle.linear_ = LinearHeads.compile(bundle.specs, bundle.models_)
        bundle.novelty_ = FeatureNovelty.load(root)
        if (root / "calibration.npz").is_file():  # a fixed name inside the folder
            with np.load(root / "calibration.npz", allow_pickle=False) as arrays:
                bundle.calibration_ = Predictions(bundle.specs, **{k: arrays[k] for k in Predictions.FIELDS})
        return bundle
