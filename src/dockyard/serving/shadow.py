"""Shadow calls: a copy of each answered request goes to every shadow variant, off the
caller's path.

:meth:`ShadowDispatcher.submit` only puts a job on a bounded queue (``put_nowait``; when it is
full the job is dropped and counted), so the caller's latency and status never depend on a
shadow. A few worker tasks take jobs, parse the request for the shadow's own model, run it
through the shadow's batcher (on the shadow thread pool, separate from live inference) with a
timeout, and then:

* log the shadow's answer to the prediction log (``shadow=True``, the caller's request id and
  row numbers, so it joins the primary's records);
* compare it with the primary's answer row by row: *agreement* for classifiers
  (``dockyard_serve_shadow_rows_total{agree="true|false"}``) and the *absolute difference*
  for regressors (``dockyard_serve_shadow_abs_diff``). The prediction log has no column for
  the comparison yet: the shadow's records carry the caller's request id and row numbers, so
  it joins the primary's records; when :class:`~dockyard.serving.predlog.PredictionRecord`
  gains ``shadow_agree`` / ``shadow_abs_diff`` fields, they are filled in.

A shadow that is slow, raises or times out is counted (``outcome``) and logged with its
status; nothing reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import DockyardError
from dockyard.serving.inputs import Payload
from dockyard.serving.pool import ModelFailure, ModelHandle, Prediction

__all__ = ["ShadowDispatcher", "ShadowJob", "compare"]

log = logging.getLogger("dockyard.serving")


@dataclass(slots=True)
class ShadowJob:
    endpoint: str
    shadow: str
    handle: ModelHandle
    parse: Callable[[ModelHandle], Payload]
    primary: Prediction
    primary_is_classifier: bool
    request_id: str
    time_ms: int
    key_hash: str | None = None


def compare(
    primary: Any, shadow: Any, classifier: bool
) -> tuple[list[bool] | None, list[float] | None]:
    """Per row: (agreement, None) for classifiers, (None, absolute difference) for
    regressors; (None, None) when the shapes differ."""
    import numpy as np

    p, s = np.asarray(primary), np.asarray(shadow)
    if p.shape != s.shape:
        return None, None
    if classifier or p.dtype.kind not in "fiub" or s.dtype.kind not in "fiub":
        eq = p == s
        if eq.ndim > 1:
            eq = eq.reshape(len(eq), -1).all(axis=1)
        return [bool(x) for x in eq], None
    diff = np.abs(p.astype("float64") - s.astype("float64"))
    if diff.ndim > 1:
        diff = diff.reshape(len(diff), -1).mean(axis=1)
    return None, [float(x) for x in diff]


class ShadowDispatcher:
    """Bounded queue + worker tasks; see the module notes."""

    def __init__(
        self,
        *,
        metrics: Any = None,
        predlog: Any = None,
        queue_size: int = 1000,
        workers: int = 4,
        timeout: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self.predlog = predlog
        self.queue_size = queue_size
        self.workers = workers
        self.timeout = timeout
        self.dropped = 0
        self.done = 0
        self._queue: asyncio.Queue[ShadowJob] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job without waiting; False (counted) when the queue is full."""
        if self._queue is None:
            return False
        try:
            self._queue.put_nowait(job)
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            self._count(job, "dropped")
            return False

    def _count(self, job: ShadowJob, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shadow_requests.labels(job.endpoint, job.shadow, outcome).inc()

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let a worker die
                log.exception(
                    "shadow %s of endpoint %s failed unexpectedly", job.shadow, job.endpoint
                )
            finally:
                self.done += 1
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a cancel that arrived mid-job
                raise asyncio.CancelledError

    async def _run(self, job: ShadowJob) -> None:
        started = time.perf_counter()
        payload: Payload | None = None
        status, error, result = 200, None, None
        outcome = "ok"
        try:
            payload = job.parse(job.handle)
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns the result when a
            # cancellation (server stop) lands as the call completes, swallowing the cancel;
            # the worker then waited for the next job forever and stop() never returned.
            async with asyncio.timeout(self.timeout):
                result = await job.handle.shadow_batcher.submit(payload, payload.rows)
        except TimeoutError:
            status, error, outcome = 504, f"shadow timed out after {self.timeout:g} s", "timeout"
        except ModelFailure as exc:
            status, error, outcome = 500, str(exc), "error"
        except DockyardError as exc:
            status, error, outcome = 400, exc.message, "error"
        except Exception as exc:
            status, error, outcome = 500, type(exc).__name__, "error"
        latency_ms = (time.perf_counter() - started) * 1000
        self._count(job, outcome)
        agree: list[bool] | None = None
        diff: list[float] | None = None
        if result is not None:
            agree, diff = compare(
                job.primary.predictions, result.predictions, job.primary_is_classifier
            )
        if result is not None and self.metrics is not None:
            if agree is not None:
                n_yes = sum(agree)
                if n_yes:
                    self.metrics.shadow_rows.labels(job.endpoint, job.shadow, "true").inc(n_yes)
                if len(agree) - n_yes:
                    self.metrics.shadow_rows.labels(job.endpoint, job.shadow, "false").inc(
                        len(agree) - n_yes
                    )
            if diff is not None:
                h = self.metrics.shadow_diff.labels(job.endpoint, job.shadow)
                for d in diff:
                    h.observe(d)
        if self.predlog is not None:
            from dockyard.serving.predlog import PredictionRecord, records_for_request

            records = records_for_request(
                request_id=job.request_id,
                endpoint=job.endpoint,
                variant=job.shadow,
                model=job.handle.ref.model,
                model_version=job.handle.ref.version,
                time=job.time_ms,
                latency_ms=latency_ms,
                inputs=payload.log_rows() if payload is not None else None,
                predictions=None if result is None else result.predictions_list(),
                probas=None if result is None else result.probabilities_list(),
                status=status,
                shadow=True,
                error=error,
                key_hash=job.key_hash,
            )
            # The comparison per row, when the log's schema has a column for it (see the
            # module notes); the metrics above have it in any case.
            fields = getattr(PredictionRecord, "__dataclass_fields__", {})
            for name, values in (("shadow_agree", agree), ("shadow_abs_diff", diff)):
                if values is not None and name in fields:
                    for rec, value in zip(records, values, strict=False):
                        setattr(rec, name, value)
            self.predlog.log(records)
