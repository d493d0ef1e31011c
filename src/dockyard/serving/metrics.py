"""Prometheus metrics of the inference server (``prometheus_client``, its own registry).

=========================================== ========= ========================================
metric                                      type      labels
=========================================== ========= ========================================
dockyard_serve_requests_total               counter   endpoint, variant, code
dockyard_serve_errors_total                 counter   endpoint, variant, kind (input, model,
                                                      unavailable, auth)
dockyard_serve_request_seconds              histogram endpoint, variant (forced requests too)
dockyard_serve_batch_requests               histogram model, version (requests per batch)
dockyard_serve_batch_rows                   histogram model, version (rows per batch)
dockyard_serve_model_load_seconds           gauge     model, version
dockyard_serve_model_runtime                gauge     model, version, runtime (1 for what
                                                      answers: onnxruntime or the flavor)
dockyard_serve_model_load_failures_total    counter   endpoint
dockyard_serve_policy_version               gauge     endpoint (the version being served)
dockyard_serve_ready                        gauge     (1 once every endpoint is loaded)
dockyard_serve_shadow_requests_total        counter   endpoint, shadow, outcome (ok, error,
                                                      timeout, dropped)
dockyard_serve_shadow_rows_total            counter   endpoint, shadow, agree (true/false;
                                                      classifiers)
dockyard_serve_shadow_abs_diff              histogram endpoint, shadow (regressors, per row)
dockyard_serve_predlog_records_written_total counter  (from the prediction log writer)
dockyard_serve_predlog_records_dropped_total counter
dockyard_serve_predlog_flush_errors_total   counter
dockyard_serve_predlog_buffered_records     gauge
=========================================== ========= ========================================

Label children are cached, so a request pays a dict lookup, not ``labels()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["CONTENT_TYPE", "ServeMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_DIFF_BUCKETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 100.0)


class _PredlogCollector:
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        try:
            s = self.stats()
        except Exception:
            return
        for name, key, help_ in (
            (
                "dockyard_serve_predlog_records_written",
                "written_records",
                "Prediction log records written.",
            ),
            (
                "dockyard_serve_predlog_records_dropped",
                "dropped_records",
                "Prediction log records dropped (buffer full, write failed, or no redaction).",
            ),
            (
                "dockyard_serve_predlog_flush_errors",
                "flush_errors",
                "Failed prediction log writes.",
            ),
        ):
            c = CounterMetricFamily(name, help_)
            c.add_metric([], float(s.get(key, 0)))
            yield c
        g = GaugeMetricFamily(
            "dockyard_serve_predlog_buffered_records",
            "Prediction log records waiting to be written.",
        )
        g.add_metric([], float(s.get("buffered", 0)))
        yield g


class ServeMetrics:
    """The server's metrics; :meth:`render` gives the exposition text."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: one per counter and histogram
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dockyard_serve_requests",
            "Prediction requests answered.",
            ["endpoint", "variant", "code"],
            registry=r,
        )
        self.errors = Counter(
            "dockyard_serve_errors",
            "Prediction requests that failed.",
            ["endpoint", "variant", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "dockyard_serve_request_seconds",
            "Time from a prediction request's arrival to its answer.",
            ["endpoint", "variant"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "dockyard_serve_batch_requests",
            "Requests coalesced into one predict call.",
            ["model", "version"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "dockyard_serve_batch_rows",
            "Rows of one predict call.",
            ["model", "version"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.load_seconds = Gauge(
            "dockyard_serve_model_load_seconds",
            "Time to load and warm up a model version.",
            ["model", "version"],
            registry=r,
        )
        self.runtime = Gauge(
            "dockyard_serve_model_runtime",
            "1 for the runtime that answers a model version: onnxruntime (compiled) or its "
            "flavor (sklearn, xgboost...).",
            ["model", "version", "runtime"],
            registry=r,
        )
        self._runtimes: dict[tuple[str, str], str] = {}
        self.load_failures = Counter(
            "dockyard_serve_model_load_failures",
            "Policy versions whose models failed to load (the old policy kept serving).",
            ["endpoint"],
            registry=r,
        )
        self.policy_version = Gauge(
            "dockyard_serve_policy_version",
            "Policy version each endpoint serves.",
            ["endpoint"],
            registry=r,
        )
        self.ready = Gauge(
            "dockyard_serve_ready", "1 when every served endpoint's models are loaded.", registry=r
        )
        self.shadow_requests = Counter(
            "dockyard_serve_shadow_requests",
            "Shadow calls by outcome.",
            ["endpoint", "shadow", "outcome"],
            registry=r,
        )
        self.shadow_rows = Counter(
            "dockyard_serve_shadow_rows",
            "Rows a shadow classifier answered, by agreement with the primary's answer.",
            ["endpoint", "shadow", "agree"],
            registry=r,
        )
        self.shadow_diff = Histogram(
            "dockyard_serve_shadow_abs_diff",
            "Absolute difference between a shadow regressor's answer and the primary's, per row.",
            ["endpoint", "shadow"],
            buckets=_DIFF_BUCKETS,
            registry=r,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def watch_predlog(self, stats: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_PredlogCollector(stats))  # type: ignore[arg-type]

    def observe_model(self, handle: Any) -> None:
        """A model version loaded (or reloaded on another runtime): its load time and runtime."""
        key = (handle.ref.model, str(handle.ref.version))
        self.load_seconds.labels(*key).set(handle.load_seconds + handle.warm_seconds)
        old = self._runtimes.get(key)
        if old is not None and old != handle.runtime:
            self.runtime.remove(*key, old)
        self._runtimes[key] = handle.runtime
        self.runtime.labels(*key, handle.runtime).set(1)

    def observe_request(self, endpoint: str, variant: str, code: int, seconds: float) -> None:
        key = (endpoint, variant)
        lat = self._children.get(key)
        if lat is None:
            lat = self._children[key] = (self.latency.labels(endpoint, variant), {})
        lat[0].observe(seconds)
        codes = lat[1]
        c = codes.get(code)
        if c is None:
            c = codes[code] = self.requests.labels(endpoint, variant, str(code))
        c.inc()

    def observe_error(self, endpoint: str, variant: str, kind: str) -> None:
        self.errors.labels(endpoint, variant, kind).inc()

    def observe_batch(self, model: str, version: int, items: int, rows: int) -> None:
        v = str(version)
        self.batch_requests.labels(model, v).observe(items)
        self.batch_rows.labels(model, v).observe(rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)
