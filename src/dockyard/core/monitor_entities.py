"""What a monitor is, what one of its runs stored, and the events runs raise.

A :class:`Monitor` is declared on an endpoint with a spec (window, schedule, features, tests,
thresholds, reference, webhooks; validated by :mod:`dockyard.monitoring.service`). Each
evaluation of one window is a :class:`MonitorRun`; its headline numbers are columns of the
store and its whole result (drift per feature, data quality, performance) a JSON document.
A :class:`MonitoringEvent` (``drift.detected``, ``performance.degraded``,
``quality.issues``) is what other parts subscribe to, e.g. the retraining loop. Standard
library only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EVENT_KINDS", "Monitor", "MonitorRun", "MonitoringEvent"]

#: The kinds of event a monitor run raises.
EVENT_KINDS: tuple[str, ...] = ("drift.detected", "performance.degraded", "quality.issues")


@dataclass(frozen=True)
class Monitor:
    endpoint: str
    name: str
    spec: dict[str, Any]
    enabled: bool
    created: int
    created_by: str
    updated: int
    updated_by: str
    version: int
    last_window_end: int | None = None
    next_run: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` with webhook URLs shown without user info and query string (a
        chat webhook's URL is often its secret): what the API and CLI show."""
        from dockyard.core.alert_entities import safe_url

        d = self.to_dict()
        spec = dict(d["spec"])
        spec["webhooks"] = [
            {**w, "url": safe_url(str(w.get("url", "")))} if isinstance(w, dict) else w
            for w in spec.get("webhooks") or []
        ]
        d["spec"] = spec
        return d


@dataclass(frozen=True)
class MonitorRun:
    id: str
    endpoint: str
    monitor: str
    created: int
    created_by: str
    window_start: int
    window_end: int
    rows: int
    status: str
    dataset_drift: bool
    n_drifted: int
    n_features: int
    n_quality_issues: int
    result: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Everything but the result document."""
        d = asdict(self)
        d.pop("result")
        return d


@dataclass(frozen=True)
class MonitoringEvent:
    id: int
    time: int
    kind: str
    endpoint: str
    monitor: str
    run_id: str | None
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
