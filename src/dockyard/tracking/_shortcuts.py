"""One-item logging calls, written once over ``log_batch`` for every tracking backend.

:class:`~dockyard.tracking.service.TrackingService` (local) and
:class:`~dockyard.client.rest.RestTrackingService` (remote) both inherit these, so the two
cannot drift apart: each only implements ``log_batch``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dockyard.core.entities import Metric


class BatchShortcuts:
    if TYPE_CHECKING:  # each backend defines it; declared here only to type the calls below

        def log_batch(
            self,
            run_id: str,
            metrics: Sequence[Metric] | Iterable[Mapping[str, Any]] = (),
            params: Mapping[str, Any] | None = None,
            tags: Mapping[str, Any] | None = None,
        ) -> None: ...

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params={key: value})

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self.log_batch(run_id, params=params)

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None
    ) -> None:
        self.log_batch(
            run_id, metrics=[{"key": key, "value": value, "step": step, "timestamp": timestamp}]
        )

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags={key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.log_batch(run_id, tags=tags)
