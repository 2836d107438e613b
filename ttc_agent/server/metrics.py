"""Metrics of ``ttc-agent serve`` for operators: Prometheus (``GET /metrics``) and the same
counts as OpenTelemetry instruments (exported by whatever `MeterProvider` the application
installs; none is installed by ttc-agent).

Requests by outcome, strategy choices, tokens by kind, request latency, the calls flagged out
of distribution, and the probes' error as a drift signal: the log ratio of measured to
predicted tokens and seconds per strategy (centred near 0 while the probes still describe the
traffic; a shift means they no longer do). Each app keeps its own registry, so two servers in
one process (tests) count apart.
"""

from __future__ import annotations

import math
from typing import Any

from opentelemetry import metrics as otel_metrics

from ttc_agent.extras import needs_extra

with needs_extra("serve", "ttc_agent.server"):
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_RATIO_BUCKETS = (-2.0, -1.0, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ServerMetrics:
    """The counters and histograms of one server, and their text exposition."""

    def __init__(self, meter_provider: otel_metrics.MeterProvider | None = None) -> None:
        meter = otel_metrics.get_meter("ttc_agent.server", meter_provider=meter_provider)
        self.otel_requests = meter.create_counter(
            "ttc.requests", "{request}", "Chat completion requests by HTTP status."
        )
        self.otel_tokens = meter.create_counter("ttc.tokens", "{token}", "Tokens spent, by kind and strategy.")
        self.otel_seconds = meter.create_histogram("ttc.request.duration", "s", "Seconds per chat completion request.")
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ttc_requests", "Chat completion requests by HTTP status.", ["status"], registry=r)
        self.choices = Counter("ttc_strategy_choices", "Strategies chosen.", ["strategy"], registry=r)
        self.tokens = Counter("ttc_tokens", "Tokens spent, by kind.", ["kind"], registry=r)
        self.seconds = Histogram("ttc_request_seconds", "Seconds per chat completion request.",
                                 buckets=_SECONDS_BUCKETS, registry=r)  # fmt: skip
        self.out_of_distribution = Counter(
            "ttc_out_of_distribution", "Calls whose prompt lay outside the probe bundle's training prompts.", registry=r
        )
        self.prediction_error = Histogram(
            "ttc_prediction_log_ratio", "log(measured / predicted) of the chosen strategy's cost: the probes' drift.",
            ["unit", "strategy"], buckets=_RATIO_BUCKETS, registry=r,
        )  # fmt: skip

    def observe_status(self, status: int, seconds: float | None = None) -> None:
        """A finished request's status (and its seconds, for the ones that ran)."""
        self.requests.labels(status=str(status)).inc()
        self.otel_requests.add(1, {"http.response.status_code": status})
        if seconds is not None:
            self.seconds.observe(seconds)
            self.otel_seconds.record(seconds)

    def observe_record(self, record: dict[str, Any]) -> None:
        """What a decision record says: the choice, the tokens, out of distribution, drift."""
        choice = record.get("choice")
        if not choice:
            return
        self.choices.labels(strategy=choice).inc()
        actual = record.get("actual") or {}
        for kind in ("prompt", "completion", "verifier"):
            self.tokens.labels(kind=kind).inc(actual.get(f"{kind}_tokens", 0))
            self.otel_tokens.add(actual.get(f"{kind}_tokens", 0), {"ttc.token.kind": kind, "ttc.strategy": choice})
        if (record.get("ood") or {}).get("novel"):
            self.out_of_distribution.inc()
        predicted = next((c for c in record.get("candidates", ()) if c["strategy"] == choice), None)
        if predicted is None:
            return
        for unit, measured in (("tokens", actual.get("total_tokens")), ("seconds", actual.get("seconds"))):
            if measured and predicted.get(unit):
                ratio = math.log(float(measured) / float(predicted[unit]))
                self.prediction_error.labels(unit=unit, strategy=choice).observe(ratio)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
