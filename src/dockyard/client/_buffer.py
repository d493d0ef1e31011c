"""Non-blocking metric logging: points are buffered and flushed in batches by a thread.

``log_metric`` appends to a list under a lock and returns; a daemon thread flushes every
``flush_seconds`` or as soon as ``batch_size`` points wait. A flush that fails keeps its
exception, which is raised at the next call into the buffer or at ``flush()`` (end of run), so
no failure is silently dropped. ``flush()`` is also registered to run at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from operator import itemgetter

from dockyard.core.entities import Metric
from dockyard.core.errors import DockyardError

Sink = Callable[[str, Sequence[Metric]], None]

_live: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()
_run_of = itemgetter(0)
_point_of = itemgetter(1)


class MetricFlushError(DockyardError):
    """Buffered metric points could not be written; the cause is chained."""

    code = "metric_flush_failed"


class MetricBuffer:
    def __init__(self, sink: Sink, *, flush_seconds: float = 0.5, batch_size: int = 1000) -> None:
        self._sink = sink
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[tuple[str, Metric]] = []
        self._error: BaseException | None = None
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        _live.add(self)

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist in the child, and a lock another thread held at
        # the fork would stay held: start afresh (the next add starts a thread).
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = self._thread = threading.Thread(
                target=self._loop, name="dockyard-metrics", daemon=True
            )
        thread.start()

    def add(self, run_id: str, metric: Metric) -> None:
        # Called once per logged point: keep it to an append under the lock.
        if self._error is not None:
            self._raise_error()
        with self._lock:
            pending = self._pending
            pending.append((run_id, metric))
            n = len(pending)
        if self._thread is None:
            self._ensure_thread()
        if n >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def add_many(self, run_id: str, metrics: Sequence[Metric]) -> None:
        if self._error is not None:
            self._raise_error()
        with self._lock:
            self._pending.extend((run_id, m) for m in metrics)
            n = len(self._pending)
        self._ensure_thread()
        if n >= self._batch_size:
            self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self._flush_pending()
            except BaseException as exc:  # kept and raised in the caller's thread
                self._error = exc

    def _flush_pending(self) -> None:
        with self._flush_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    batch = self._pending[: self._batch_size]
                    del self._pending[: self._batch_size]
                if len(set(map(_run_of, batch))) == 1:  # the usual case: one run
                    self._sink(batch[0][0], list(map(_point_of, batch)))
                    continue
                by_run: dict[str, list[Metric]] = {}
                for run_id, m in batch:
                    by_run.setdefault(run_id, []).append(m)
                for run_id, points in by_run.items():
                    self._sink(run_id, points)

    def _raise_error(self) -> None:
        exc, self._error = self._error, None
        assert exc is not None
        if isinstance(exc, DockyardError):
            raise MetricFlushError(f"buffered metrics could not be logged: {exc.message}") from exc
        raise MetricFlushError(f"buffered metrics could not be logged: {exc}") from exc

    def flush(self) -> None:
        """Write every pending point now; raise any failure, including an earlier one."""
        if self._error is not None:
            self._raise_error()
        try:
            self._flush_pending()
        except DockyardError as exc:
            raise MetricFlushError(f"buffered metrics could not be logged: {exc.message}") from exc

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._closed = True
            self._wake.set()


def _after_fork_in_child() -> None:
    for buf in list(_live):
        buf._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_all_at_exit() -> None:
    for buf in list(_live):
        try:
            buf.flush()
        except Exception as exc:  # at exit there is no caller left to raise to
            import sys

            print(f"dockyard: {exc}", file=sys.stderr)
