"""Background loops that must run in one replica at a time: a lease in the metadata store.

:class:`LeasedLoop` calls a pass function every ``interval`` seconds in a daemon thread, but
only while it holds the named lease (taken or renewed before each pass, ``lease_seconds``
long); a second replica running the same loop finds the lease held and skips its passes. The
lease lives in the store, so a replica that dies simply lets it expire. The canary controller
and the monitor scheduler are such loops. A pass that raises is logged and the loop goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard.governance.audit import now_ms

if TYPE_CHECKING:
    from dockyard.store.sql import SqlStore

__all__ = ["LeasedLoop"]

log = logging.getLogger("dockyard.loops")


class LeasedLoop:
    """Run ``pass_fn(now_ms)`` every ``interval`` seconds while holding lease ``name``."""

    def __init__(
        self,
        store: SqlStore,
        name: str,
        pass_fn: Callable[[int], Any],
        *,
        interval: float = 5.0,
        lease_seconds: float = 30.0,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.pass_fn = pass_fn
        self.interval = interval
        self.lease_ms = int(max(lease_seconds, 2 * interval) * 1000)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, now: int | None = None) -> bool:
        """Take or renew the lease; False when another holder has it."""
        at = now_ms() if now is None else now
        return bool(
            self.store.write(
                lambda u: u.acquire_lease(self.name, self.holder, now=at, ttl_ms=self.lease_ms)
            )
        )

    def run_once(self, now: int | None = None) -> Any:
        """One pass under the lease; None when another replica holds it."""
        at = now_ms() if now is None else now
        if not self.acquire(at):
            return None
        return self.pass_fn(at)

    def start(self) -> None:
        """Run passes every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            # The first pass after one interval: start-up stays free of store writes.
            while not self._stop.wait(self.interval):
                try:
                    self.run_once()
                except Exception:
                    log.exception("%s pass failed", self.name)

        self._thread = threading.Thread(target=loop, name=f"dockyard-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.store.write(lambda u: u.release_lease(self.name, self.holder))
        except Exception:  # the store may be gone at shutdown; the lease expires anyway
            log.debug("could not release the %s lease", self.name, exc_info=True)
