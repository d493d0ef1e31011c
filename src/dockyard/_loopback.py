"""Run an ASGI app with uvicorn in a background thread on a free loopback port (the demos).

``with LoopbackServer(app) as server:`` -- ``server.url`` is where it listens; leaving the
block (normally, by an exception, or by Ctrl-C in the main thread) stops it and waits.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from dockyard.core.errors import Unavailable

__all__ = ["LoopbackServer"]

_START_TIMEOUT_SECONDS = 30.0


class LoopbackServer:
    """uvicorn serving ``app`` on ``127.0.0.1`` and a port the OS picks."""

    def __init__(self, app: Any, *, name: str = "dockyard-loopback") -> None:
        self.app = app
        self.name = name
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def __enter__(self) -> LoopbackServer:
        import uvicorn

        # Bind first (port 0: the OS picks a free one) and hand the socket to uvicorn, so no
        # other process can take the port in between. It stays open until the server stops.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.bind(("127.0.0.1", 0))
            port = self._socket.getsockname()[1]
            config = uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=port,
                log_config=None,  # leave the process's logging alone
                log_level="warning",
                access_log=False,
                server_header=False,
                lifespan="on",
            )
            self._server = uvicorn.Server(config)
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [self._socket]},
                name=self.name,
                daemon=True,
            )
            self._thread.start()
            started = time.monotonic()
            while not self._server.started:
                if not self._thread.is_alive() or (
                    time.monotonic() - started > _START_TIMEOUT_SECONDS
                ):
                    raise Unavailable(f"{self.name} did not start (see the messages above)")
                time.sleep(0.02)
        except BaseException:
            self._stop()
            raise
        self.url = f"http://127.0.0.1:{port}"
        return self

    def _stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __exit__(self, *exc: object) -> None:
        self._stop()
