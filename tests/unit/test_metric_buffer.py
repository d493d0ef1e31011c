"""The SDK's metric buffer: batching, background flushing, and failures that surface."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from dockyard.client._buffer import MetricBuffer, MetricFlushError
from dockyard.core.entities import Metric
from dockyard.core.errors import NotFound


class Sink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[Metric]]] = []
        self.fail: Exception | None = None
        self.called = threading.Event()

    def __call__(self, run_id: str, points: Sequence[Metric]) -> None:
        self.called.set()
        if self.fail is not None:
            raise self.fail
        self.batches.append((run_id, list(points)))


def test_points_are_flushed_in_batches_of_at_most_batch_size() -> None:
    sink = Sink()
    buf = MetricBuffer(sink, flush_seconds=60, batch_size=100)
    for i in range(250):
        buf.add("r", Metric("m", float(i), 0, i))
    buf.flush()
    assert sum(len(b) for _, b in sink.batches) == 250
    assert max(len(b) for _, b in sink.batches) <= 100
    assert [m.step for _, b in sink.batches for m in b] == list(range(250))
    buf.close()


def test_background_thread_flushes_without_an_explicit_call() -> None:
    sink = Sink()
    buf = MetricBuffer(sink, flush_seconds=0.01, batch_size=1000)
    buf.add("r", Metric("m", 1.0, 0, 0))
    assert sink.called.wait(5)
    buf.close()


def test_a_failed_flush_is_raised_at_the_next_call_never_dropped() -> None:
    sink = Sink()
    sink.fail = NotFound("run r does not exist")
    buf = MetricBuffer(sink, flush_seconds=0.01, batch_size=1000)
    buf.add("r", Metric("m", 1.0, 0, 0))
    assert sink.called.wait(5)
    for _ in range(500):
        if buf._error is not None:
            break
        threading.Event().wait(0.01)
    with pytest.raises(MetricFlushError, match="run r does not exist"):
        buf.add("r", Metric("m", 2.0, 0, 1))
    sink.fail = None
    buf.close()


def test_flush_raises_a_synchronous_failure() -> None:
    sink = Sink()
    sink.fail = NotFound("gone")
    buf = MetricBuffer(sink, flush_seconds=60, batch_size=1000)
    buf.add("r", Metric("m", 1.0, 0, 0))
    with pytest.raises(MetricFlushError, match="gone"):
        buf.flush()
    sink.fail = None
    buf.close()
