"""Service routes outside the versioned API: ``GET /healthz``.

``/healthz`` answers ``{"status": "ok"}`` once the metadata store answers a query, and 503
``unavailable`` in the error envelope when it does not -- fit for load balancer and Kubernetes
probes.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dockyard.backend import Backend
from dockyard.server.routes._common import ok

router = APIRouter(tags=["meta"])

_NO_RUN = "0" * 32


@router.get("/healthz", summary="Liveness and store check")
def healthz(request: Request) -> Response:
    backend: Backend = request.app.state.backend
    # The cheapest real query: a primary-key lookup that finds nothing. The store raises
    # Unavailable (503) when the database cannot be reached.
    backend.store.read(lambda unit: unit.run_exists(_NO_RUN))
    return ok({"status": "ok"})
