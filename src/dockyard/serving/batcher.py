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
        self._queue.append((item, max(int(rows), 1), fut))
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
                continue
            if batch and rows + n > self.max_rows:
                break
            self._queue.popleft()
            batch.append((item, n, fut))
            rows += n
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_wait and self._last_size > 1:
                    # Busy: let a partial batch fill for up to max_wait (never when idle).
                    deadline = time.monotonic() + self.max_wait
                    while (
                        sum(n for _, n, _ in self._queue) < self.max_rows
                        and time.monotonic() < deadline
                    ):
                        await asyncio.sleep(min(0.0005, self.max_wait))
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
            raise
        finally:
            self._running = False
