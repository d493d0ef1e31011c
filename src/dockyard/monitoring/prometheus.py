"""Monitoring results in the Prometheus text format: the newest run of every monitor.

Served by ``dockyard server`` at ``GET /api/v1/monitoring/metrics`` (with a bearer token when
auth is on; only the endpoints the caller may read). Gauges, one sample per newest run of each
``(endpoint, monitor)``:

* ``dockyard_monitor_rows``, ``dockyard_monitor_dataset_drift`` (0/1),
  ``dockyard_monitor_share_drifted``, ``dockyard_monitor_quality_issues``,
  ``dockyard_monitor_window_end_seconds``;
* ``dockyard_monitor_feature_drift_score`` and ``dockyard_monitor_feature_drifted`` per
  ``feature`` (with its ``test``; ``feature="prediction"`` is prediction drift);
* ``dockyard_monitor_performance`` per ``variant`` and ``metric`` (realised, from labels),
  ``dockyard_monitor_performance_estimate`` (CBPE), ``dockyard_monitor_label_coverage``.

The page is built per scrape from the store (no state in the process), so every replica of
the server serves the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dockyard.core.monitor_entities import MonitorRun

__all__ = ["render_metrics"]


def render_metrics(runs: Iterable[MonitorRun]) -> bytes:
    """The exposition text of the newest run of each (endpoint, monitor) among ``runs``."""
    from prometheus_client import CollectorRegistry, generate_latest

    newest: dict[tuple[str, str], MonitorRun] = {}
    for r in runs:
        key = (r.endpoint, r.monitor)
        if key not in newest or (r.window_end, r.created) > (
            newest[key].window_end,
            newest[key].created,
        ):
            newest[key] = r
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(list(newest.values())))
    return generate_latest(registry)


class _Collector:
    def __init__(self, runs: list[MonitorRun]) -> None:
        self.runs = runs

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        base = ["endpoint", "monitor"]

        def gauge(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=base + (extra or []))

        rows = gauge("dockyard_monitor_rows", "Live rows in the newest window.")
        drift = gauge("dockyard_monitor_dataset_drift", "1 when the newest window drifted.")
        share = gauge("dockyard_monitor_share_drifted", "Share of drifted features.")
        quality = gauge("dockyard_monitor_quality_issues", "Data-quality issues in the window.")
        end = gauge("dockyard_monitor_window_end_seconds", "End of the newest window (epoch s).")
        score = gauge(
            "dockyard_monitor_feature_drift_score",
            "Drift score (p-value or distance, see test).",
            ["feature", "test"],
        )
        drifted = gauge("dockyard_monitor_feature_drifted", "1 when drifted.", ["feature"])
        perf = gauge(
            "dockyard_monitor_performance", "Realised metric (labels).", ["variant", "metric"]
        )
        est = gauge(
            "dockyard_monitor_performance_estimate",
            "Estimated metric (CBPE).",
            ["variant", "metric"],
        )
        coverage = gauge("dockyard_monitor_label_coverage", "Labeled share.", ["variant"])
        for r in self.runs:
            lab = [r.endpoint, r.monitor]
            rows.add_metric(lab, r.rows)
            drift.add_metric(lab, 1.0 if r.dataset_drift else 0.0)
            quality.add_metric(lab, r.n_quality_issues)
            end.add_metric(lab, r.window_end / 1000)
            d = r.result.get("drift") or {}
            if d:
                share.add_metric(lab, float(d.get("share_drifted") or 0.0))
            feats = dict(d.get("features") or {})
            if d.get("prediction"):
                feats["prediction"] = d["prediction"]
            for name, f in feats.items():
                if f.get("score") is not None:
                    score.add_metric([*lab, name, str(f.get("test"))], float(f["score"]))
                drifted.add_metric([*lab, name], 1.0 if f.get("drifted") else 0.0)
            for variant, v in ((r.result.get("performance") or {}).get("variants") or {}).items():
                if v.get("coverage") is not None:
                    coverage.add_metric([*lab, variant], float(v["coverage"]))
                for fam, values in ((perf, v.get("metrics")), (est, v.get("estimated"))):
                    for metric, value in _numbers(values):
                        fam.add_metric([*lab, variant, metric], value)
        yield from (rows, drift, share, quality, end, score, drifted, perf, est, coverage)


def _numbers(values: Any) -> Iterator[tuple[str, float]]:
    for k, v in (values or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "n":
            yield k, float(v)
