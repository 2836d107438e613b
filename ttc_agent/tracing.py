"""Decision records: what each call predicted, chose and spent, sent wherever people look.

Every face sends each record to the same places:

- the chat-model run of the call, as metadata (``ttc_strategy``, ``ttc_feasible``, the
  predictions) and tags (``ttc``, ``ttc:<strategy>``), with the usage on its output: what
  LangSmith and any LangChain tracer show (`annotate_run`);
- an OpenTelemetry span following the GenAI semantic conventions (`call_span`), through
  ``opentelemetry-api`` (spans go nowhere until the application installs an SDK);
- Python `logging`, logger ``ttc_agent``, one INFO line per call;
- LangGraph's stream writer (``stream_mode="custom"`` yields ``{"ttc_decision": record}``);
- an optional JSONL sink that ``ttc-agent report`` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer
from opentelemetry import trace as otel
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ttc_agent.policy import Decision
from ttc_agent.records import DecisionRecord, FeaturesRecord
from ttc_agent.strategies import Outcome

EVENT = "ttc_decision"
logger = logging.getLogger("ttc_agent")
_tracer = otel.get_tracer("ttc_agent")


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
    if outcome.stages is not None:
        record["stages"] = outcome.stages
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


def publish(record: DecisionRecord, sink: JsonlTraceSink | None) -> None:
    """A finished call's record to the sink, the log and the graph's stream writer."""
    if sink is not None:
        sink.write(record)
    _log(record)
    _stream(record)


def decision_metadata(decision: Decision) -> tuple[dict[str, object], list[str]]:
    """Run metadata and tags that show a decision in LangSmith (and any LangChain tracer)."""
    i = decision.index
    metadata: dict[str, object] = {
        "ttc_strategy": decision.spec,
        "ttc_feasible": decision.feasible,
        "ttc_predicted_accuracy": round(decision.accuracy[i], 4),
        "ttc_predicted_tokens": round(decision.tokens[i], 1),
        "ttc_predicted_seconds": round(decision.seconds[i], 3),
        "ttc_menu": list(decision.specs),
    }
    return metadata, ["ttc", f"ttc:{decision.spec}"]


def annotate_run(run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun, decision: Decision) -> None:
    """Add the decision's metadata and tags to the chat-model run the tracers hold, before the
    run ends (LangSmith's tracer sends a run's metadata and tags with its end)."""
    metadata, tags = decision_metadata(decision)
    for handler in [*run_manager.handlers, *run_manager.inheritable_handlers]:
        if isinstance(handler, BaseTracer | AsyncBaseTracer):
            run = handler.run_map.get(str(run_manager.run_id))
            if run is not None:
                run.extra.setdefault("metadata", {}).update(metadata)
                run.tags = [*(run.tags or []), *(t for t in tags if t not in (run.tags or []))]


@contextmanager
def call_span(name: str, model: str, decision: Decision, stop: Sequence[str] = ()) -> Iterator[Span]:
    """An OpenTelemetry span around one call (``chat <model>``, GenAI semantic conventions,
    plus ``ttc.*`` attributes for the decision); `end_span` adds the usage."""
    i = decision.index
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ttc-agent",
        "gen_ai.request.model": model,
        "ttc.node": name,
        "ttc.strategy": decision.spec,
        "ttc.feasible": decision.feasible,
        "ttc.predicted.accuracy": decision.accuracy[i],
        "ttc.predicted.tokens": decision.tokens[i],
        "ttc.predicted.seconds": decision.seconds[i],
    }
    if stop:
        attributes["gen_ai.request.stop_sequences"] = list(stop)
    with _tracer.start_as_current_span(f"chat {model}", kind=otel.SpanKind.CLIENT, attributes=attributes) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise


def end_span(span: Span, message: AIMessage, model: str) -> None:
    """The call's usage, and why its reply ended, on its span."""
    actual = message.response_metadata["ttc"]["actual"]
    span.set_attributes(
        {
            "gen_ai.response.model": model,
            "gen_ai.response.finish_reasons": [message.response_metadata["finish_reason"]],
            "gen_ai.usage.input_tokens": actual["prompt_tokens"] + actual["verifier_tokens"],
            "gen_ai.usage.output_tokens": actual["completion_tokens"],
            "ttc.actual.seconds": actual["seconds"],
            "ttc.actual.rounds": actual["rounds"],
        }
    )


def _log(record: DecisionRecord) -> None:
    actual = record["actual"]
    if record.get("exhausted"):
        logger.info("%s: workflow budget exhausted (%s)", record["node"], record["exhausted"]["limit"])
        return
    logger.info(
        "%s: chose %s (feasible %s); spent %d tokens in %.2f s; answer %r",
        record["node"],
        record["choice"],
        record["feasible"],
        actual["total_tokens"],
        actual["seconds"],
        record["answer"],
        extra={"ttc": record},
    )


def _stream(record: DecisionRecord) -> None:
    from langgraph.config import get_stream_writer

    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):  # not inside a graph run (KeyError: inside a runnable that is not one)
        return
    writer({EVENT: record})
