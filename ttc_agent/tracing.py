"""Decision records: what each call predicted, chose and spent, sent wherever people look.

A record goes to LangChain callbacks as the custom event ``ttc_decision`` (LangSmith shows it),
to LangGraph's stream writer (``stream_mode="custom"`` shows it live), and to an optional JSONL
sink that ``ttc-agent report`` reads.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ttc_agent.policy import Decision
from ttc_agent.records import DecisionRecord, FeaturesRecord
from ttc_agent.strategies import Outcome

EVENT = "ttc_decision"


def features_digest(x: np.ndarray) -> FeaturesRecord:
    """A short, stable summary of a feature vector: a hash, its width and its norm."""
    v = np.asarray(x, dtype=np.float32).ravel()
    return {
        "sha256": hashlib.sha256(np.round(v, 4).tobytes()).hexdigest()[:12],
        "dim": int(v.size),
        "norm": float(np.linalg.norm(v)),
    }


def decision_record(
    node: str, decision: Decision, outcome: Outcome, features: FeaturesRecord, prompt_tokens: int
) -> DecisionRecord:
    """The JSON-ready record of one call: predictions for every strategy, limits, choice, actual cost."""
    record: DecisionRecord = {
        "time": time.time(),
        "node": node,
        "features": features,
        "prompt_tokens": prompt_tokens,
        "answer": outcome.answer,
        "actual": outcome.cost.as_dict(),
    }
    record.update(decision.as_dict())
    return record


class JsonlTraceSink:
    """Appends decision records to a JSONL file (thread-safe; one line per call, flushed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: DecisionRecord) -> None:
        line = json.dumps(record, default=float) + "\n"
        with self._lock, self.path.open("a") as f:
            f.write(line)


def emit(record: DecisionRecord, config: Any) -> None:
    """Send a record to the run's callbacks and stream writer (no-ops outside a graph run)."""
    from langchain_core.callbacks import dispatch_custom_event

    if config is not None and config.get("callbacks") is not None:
        dispatch_custom_event(EVENT, record, config=config)
    _stream(record)


async def aemit(record: DecisionRecord, config: Any) -> None:
    """Async `emit`."""
    from langchain_core.callbacks import adispatch_custom_event

    if config is not None and config.get("callbacks") is not None:
        await adispatch_custom_event(EVENT, record, config=config)
    _stream(record)


def emit_on_run(record: DecisionRecord, run_manager: Any) -> None:
    """Send a record as a custom event of a chat model's own run, and to the stream writer."""
    from langchain_core.callbacks import CallbackManager

    manager = CallbackManager(
        handlers=run_manager.handlers,
        parent_run_id=run_manager.run_id,
        tags=run_manager.tags,
        metadata=run_manager.metadata,
    )
    manager.on_custom_event(EVENT, record, run_id=run_manager.run_id)
    _stream(record)


async def aemit_on_run(record: DecisionRecord, run_manager: Any) -> None:
    """Async `emit_on_run`."""
    from langchain_core.callbacks import AsyncCallbackManager

    manager = AsyncCallbackManager(
        handlers=run_manager.handlers,
        parent_run_id=run_manager.run_id,
        tags=run_manager.tags,
        metadata=run_manager.metadata,
    )
    await manager.on_custom_event(EVENT, record, run_id=run_manager.run_id)
    _stream(record)


def _stream(record: DecisionRecord) -> None:
    from langgraph.config import get_stream_writer

    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):  # not inside a graph run (KeyError: inside a runnable that is not one)
        return
    writer({EVENT: record})
