"""The REST API server: an ASGI app over the same services as the SDK and the CLI.

``create_app(settings)`` builds the FastAPI application; ``run(settings, host, port, workers)``
serves it with uvicorn.
"""

from dockyard.server.app import create_app as create_app
from dockyard.server.app import run as run

__all__ = ["create_app", "run"]
