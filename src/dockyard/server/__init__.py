"""The REST API server: an ASGI app over the same services as the SDK and the CLI.

``create_app(settings)`` builds the FastAPI application; ``run(settings, host, port, workers)``
serves it with uvicorn. Both are imported on first use, so the inference server
(:mod:`dockyard.server.serve_app`) does not pay for the tracking API's routes at start-up.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dockyard.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'dockyard.server' has no attribute {name!r}")
