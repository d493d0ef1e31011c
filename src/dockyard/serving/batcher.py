"""An asyncio micro-batcher: concurrent requests for one model coalesce into one call.

Requests are queued per model; one *drain* task per batcher takes everything waiting (up to
``max_rows`` rows) and runs the batch function once, in a thread pool (never on the event
loop), then hands each request its own result. Adaptive, like Triton's default dynamic
batcher: when the model is idle a request is dispatched at once (no added latency); while a
batch runs, the requests that arrive meanwhile form the next batch. ``max_wait_ms`` lets a
*busy* batcher (its last batch held more than one request) hold a partial batch up to that
long to fill it; an idle one never waits. The server's default is 1 ms (setting
``serve_max_wait_ms``): measured with single-row requests at concurrency 16 on a small
scikit-learn classifier, it gave larger batches (about 6 requests instead of 4) and 10-30 %
more throughput than 0, with a lower p99; concurrency 1 is unaffected.

After those ``max_wait_ms``, a busy batcher keeps holding the batch while the event loop is
still taking in requests (a yield to the loop comes back late, or brings new requests), up to
the duration of its last batch (20 ms at most): the requests being read then would otherwise
wait for the batch just dispatched and then run in the next one. It dispatches once the loop
has been idle for 1 ms (waiting in the loop's poll, not spinning: on 2 cores a spinning loop
takes the core a late client needs), or at once when as many requests wait as its last batch
held. With
Python models the GIL makes the event loop and the inference thread take turns anyway, so
nothing is lost by not overlapping them, and the batches stay whole: measured with single-row
requests at 16 connections (benchmarks/serving.py, scikit-learn pipeline) the requests
otherwise split into two alternating batches of about 8, each paying the model's fixed cost
per call (about 5 ms), and every request waited for two batches.

The batch function gets the list of items and returns one result per item: a value, or an
exception instance that fails only that item. If it raises, every item of that batch fails
with the exception (the caller turns that into a 500 with an error id); other batches are
untouched. A request whose caller went away (cancelled future) is simply skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["BatchStats", "MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Sequence[T]], Sequence[Any]]

#: A yield to the event loop that comes back sooner than this found nothing else to run.
_IDLE_YIELD_S = 0.0001
#: How long the event loop must have been idle before a busy batcher stops holding: a
#: client answered at the end of the loop's last turn usually sends its next request within
#: a few hundred microseconds, and a request that misses the batch waits for two (uvloop's
#: timers count whole milliseconds).
_IDLE_GRACE_S = 0.001
#: The longest a busy batcher holds a batch past ``max_wait`` while the loop is busy (a
#: model that releases the GIL could have been computing meanwhile).
_MAX_BUSY_HOLD_S = 0.02


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(slots=True)
class BatchStats:
    batches: int = 0
    items: int = 0
    rows: int = 0
    max_items: int = 0


class MicroBatcher(Generic[T]):
    """Coalesce ``submit`` calls into batch calls of ``fn`` run on ``executor``.

    ``on_batch(items, rows, seconds)`` (optional) is called on the event loop after each
    batch, for metrics.
    """

    def __init__(
        self,
        fn: BatchFn[T],
        executor: Executor | None,
        *,
        max_rows: int = 256,
        max_wait_ms: float = 0.0,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        self.fn = fn
        self.executor = executor
        self.max_rows = int(max_rows)
        self.max_wait = max(float(max_wait_ms), 0.0) / 1000.0
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: deque[tuple[T, int, asyncio.Future[Any]]] = deque()
        self._running = False
        self._task: asyncio.Task[None] | None = None  # keeps the drain task referenced
        self._last_size = 1
        self._last_seconds = 0.0
        self._queued_rows = 0
        self._waiter: asyncio.Future[None] | None = None  # a holding batcher's wake-up

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._running

    async def submit(self, item: T, rows: int = 1) -> Any:
        """Queue ``item`` (``rows`` rows) and wait for its own result; an exception returned
        for it by the batch function is raised here."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        n = max(int(rows), 1)
        self._queue.append((item, n, fut))
        self._queued_rows += n
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await fut

    def _take(self) -> list[tuple[T, int, asyncio.Future[Any]]]:
        batch: list[tuple[T, int, asyncio.Future[Any]]] = []
        rows = 0
        while self._queue:
            item, n, fut = self._queue[0]
            if fut.done():  # the caller went away
                self._queue.popleft()
                self._queued_rows -= n
                continue
            if batch and rows + n > self.max_rows:
                break
            self._queue.popleft()
            self._queued_rows -= n
            batch.append((item, n, fut))
            rows += n
        return batch

    async def _fill(self) -> None:
        """Hold the queue until it has ``max_rows`` rows, or ``max_wait`` has passed and then
        the event loop is idle (every yield quick, no new request) for ``_IDLE_GRACE_S`` -- or
        for two yields when as many requests wait as the last batch held -- or the last
        batch's duration (at most ``_MAX_BUSY_HOLD_S``) has passed."""
        started = time.perf_counter()
        hold = self.max_wait
        longest = max(hold, min(self._last_seconds, _MAX_BUSY_HOLD_S))
        busy_at = started
        quiet = 0
        while self._queued_rows < self.max_rows:
            t0 = time.perf_counter()
            waited = t0 - started
            if waited >= longest:
                return
            if waited < hold:
                await asyncio.sleep(min(0.0005, hold - waited))
                busy_at = time.perf_counter()
                continue
            queued = len(self._queue)
            await asyncio.sleep(0)  # one turn of the loop: read what arrived, run what waits
            now = time.perf_counter()
            if len(self._queue) != queued or now - t0 >= _IDLE_YIELD_S:
                busy_at = now
                quiet = 0
                continue
            quiet += 1
            # Idle: go at once when as many requests wait as the last batch answered (those
            # clients are back), else when the grace has passed.
            if quiet >= 2 and queued >= self._last_size:
                return
            left = _IDLE_GRACE_S - (now - busy_at)
            if left <= 0:
                return
            if quiet >= 2:
                # Wait for the next request without spinning: a spinning loop would hold a
                # core the late clients need (on 2 cores, a load generator's thread).
                await self._wait_arrival(left)
                if len(self._queue) != queued:
                    busy_at = time.perf_counter()
                    quiet = 0

    async def _wait_arrival(self, timeout: float) -> None:
        """Until a request is submitted, or ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_wait and self._last_size > 1:
                    await self._fill()  # busy: let a partial batch fill (never when idle)
                batch = self._take()
                if not batch:
                    continue
                items = [b[0] for b in batch]
                rows = sum(b[1] for b in batch)
                started = time.perf_counter()
                try:
                    results: Sequence[Any] = await loop.run_in_executor(
                        self.executor, self.fn, items
                    )
                    if len(results) != len(items):
                        raise RuntimeError(
                            f"batch function returned {len(results)} results for {len(items)} items"
                        )
                except Exception as exc:
                    results = [exc] * len(items)
                seconds = time.perf_counter() - started
                self._last_size = len(items)
                self._last_seconds = seconds
                st = self.stats
                st.batches += 1
                st.items += len(items)
                st.rows += rows
                st.max_items = max(st.max_items, len(items))
                for (_, _, fut), res in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
                if self.on_batch is not None:
                    try:
                        self.on_batch(len(items), rows, seconds)
                    except Exception:  # metrics never fail a request
                        pass
        except asyncio.CancelledError:  # the loop is shutting down
            while self._queue:
                _, _, fut = self._queue.popleft()
                if not fut.done():
                    fut.set_exception(RuntimeError("the server is shutting down"))
            self._queued_rows = 0
            raise
        finally:
            self._running = False
