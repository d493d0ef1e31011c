"""The ASGI application: :func:`create_app` builds it, :func:`run` serves it with uvicorn.

``create_app(settings)`` reads nothing by itself beyond the settings it is given (or loads them
once if given none). At start-up (the ASGI lifespan) it opens one
:class:`~dockyard.backend.Backend` -- the metadata store and the artifact store -- and every
request gets a fresh :class:`~dockyard.tracking.service.TrackingService` over it, acting for
the request's principal. The routes are thin shells over that service; see the route modules
for the REST shape:

* :mod:`dockyard.server.routes.experiments` -- ``/api/v1/experiments...``
* :mod:`dockyard.server.routes.runs` -- ``/api/v1/runs...``
* :mod:`dockyard.server.routes.artifacts` -- ``/api/v1/runs/{run_id}/artifacts...``
* :mod:`dockyard.server.routes.audit` -- ``/api/v1/audit``
* :mod:`dockyard.server.routes.models` -- ``/api/v1/models...`` (the model registry) and
  ``/api/v1/blobs``
* :mod:`dockyard.server.routes.identity` -- ``/api/v1/users``, ``/tokens``, ``/grants`` and
  ``/whoami``
* :mod:`dockyard.server.routes.meta` -- ``/healthz``

OpenAPI is at ``/api/v1/openapi.json`` and interactive docs at ``/api/v1/docs``. Errors always
use one envelope (:mod:`dockyard.server.errors`). Nothing here imports numpy, pandas or
scikit-learn: the server starts in a fraction of a second and stays small.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from dockyard.backend import Backend
from dockyard.core.config import Settings, load_settings
from dockyard.core.secrets import install as install_secret_filter
from dockyard.registry.packaging.trust import parse_trusted_modules
from dockyard.server._auth import AuthMiddleware, resolve_auth_mode
from dockyard.server._body import BodyLimitMiddleware
from dockyard.server._hosts import AllowedHostsMiddleware
from dockyard.server._json import JSONResponse
from dockyard.server._process import configure_logging as _configure_logging
from dockyard.server._process import export_settings as _export_settings
from dockyard.server._process import url as _url
from dockyard.server.errors import CatchAllMiddleware, install_error_handlers
from dockyard.server.routes import (
    artifacts,
    audit,
    endpoints,
    experiments,
    identity,
    meta,
    models,
    monitoring,
    runs,
)
from dockyard.server.schemas import ERROR_RESPONSES

__all__ = ["API_PREFIX", "create_app", "create_app_from_env", "run"]

API_PREFIX = "/api/v1"
log = logging.getLogger("dockyard.server")


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("dockyard")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def create_app(
    settings: Settings | None = None,
    *,
    bind_host: str | None = "127.0.0.1",
    admin_token: str | None = None,
) -> FastAPI:
    """Build the Dockyard API application for ``settings`` (default: load them now, once).

    ``bind_host`` is where the app will be served, for ``auth = auto`` (on unless loopback;
    None = unknown, so on). With auth on, the first start bootstraps an admin (see
    :func:`bootstrap_admin_token`) from ``admin_token`` or ``DOCKYARD_ADMIN_TOKEN``.
    """
    settings = settings if settings is not None else load_settings()
    auth_on = resolve_auth_mode(settings.auth, bind_host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Logging is configured by now (uvicorn does it before the app starts, in every
        # worker): scrub secrets from every line it writes, access lines included.
        install_secret_filter()
        parse_trusted_modules(settings.trusted_modules)  # a bad setting stops the start-up
        backend = Backend.open(settings)
        app.state.backend = backend
        if backend.artifacts.encrypted:
            log.info("artifacts are encrypted at rest (AES-256-GCM)")
        if auth_on:
            bootstrap_admin_token(backend, admin_token)
            log.info(
                "auth on: every route but /healthz and the API docs needs "
                "'Authorization: Bearer <token>'"
            )
        else:
            log.warning(
                "auth off: every request acts as 'anonymous' with every permission "
                "(bind to a non-loopback address or set DOCKYARD_AUTH=on to require tokens)"
            )
        # Everything built at start-up (modules, routes, schemas, pools) lives as long as the
        # process: move it out of the garbage collector's reach, so the first full collection
        # under load does not walk it all (it cost the first large request tens of ms).
        gc.collect()
        gc.freeze()
        controller = None
        if settings.canary_interval and settings.canary_interval > 0:
            from dockyard.serving.controller import CanaryController

            controller = CanaryController(backend, interval=float(settings.canary_interval))
            controller.start()
        scheduler = None
        if settings.monitor_interval and settings.monitor_interval > 0:
            from dockyard.monitoring.service import MonitorScheduler

            scheduler = MonitorScheduler(backend, interval=float(settings.monitor_interval))
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if controller is not None:
                controller.stop()
            backend.close()

    app = FastAPI(
        title="Dockyard",
        version=_version(),
        summary="Tracking API of Dockyard, the open-source MLOps platform.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        swagger_ui_oauth2_redirect_url=f"{API_PREFIX}/docs/oauth2-redirect",
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # "/api/v1/runs/" is a 404 naming the route, not a redirect that echoes the path back.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.auth_enabled = auth_on
    install_error_handlers(app)
    # Innermost: runs after the host check and the catch-all, before routing (deny by default).
    app.add_middleware(AuthMiddleware, enabled=auth_on)
    # add_middleware wraps: the last added is the outermost, so the catch-all also covers the
    # body limiter.
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(settings.max_body_bytes))
    app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(CatchAllMiddleware)

    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    for module in (experiments, runs, artifacts, audit, models, identity, endpoints, monitoring):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(meta.router, responses=ERROR_RESPONSES)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: settings from the environment (see :func:`run`)."""
    return create_app(load_settings(), bind_host=None)


def bootstrap_admin_token(backend: Backend, admin_token: str | None = None) -> None:
    """With auth on and no enabled admin in the store, create the user ``admin`` with a global
    admin grant and a token: ``admin_token`` / ``DOCKYARD_ADMIN_TOKEN`` when set (only its hash
    is stored, it is never logged), else a new one, printed once to the terminal (stderr,
    not through logging, so no log file keeps it)."""
    from dockyard.governance.identity import BOOTSTRAP_ADMIN, bootstrap_admin

    given = admin_token or os.environ.get("DOCKYARD_ADMIN_TOKEN") or None
    new = bootstrap_admin(backend.store, given)
    if new is None:
        return
    if given is not None:
        log.info(
            "created admin user %r with the token from DOCKYARD_ADMIN_TOKEN (%s)",
            BOOTSTRAP_ADMIN,
            new.token.token_id,
        )
        return
    sys.stderr.write(
        "\n"
        f"  Dockyard created the admin user {BOOTSTRAP_ADMIN!r}. Its API token, shown only "
        "this once:\n"
        "\n"
        f"      {new.secret}\n"
        "\n"
        "  Use it as DOCKYARD_TRACKING_TOKEN to create users and tokens, then revoke it\n"
        f"  (dockyard tokens revoke {new.token.token_id}). Set DOCKYARD_ADMIN_TOKEN to choose it.\n"
        "\n"
    )
    sys.stderr.flush()


def run(
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve the API with uvicorn until interrupted (what ``dockyard server`` calls).

    With ``workers > 1`` uvicorn starts that many processes, each building its own app through
    :func:`create_app_from_env`; the settings reach them through ``DOCKYARD_*`` variables.
    """
    import uvicorn

    from dockyard.store.engine import redact_url

    settings = settings if settings is not None else load_settings()
    _configure_logging(log_level)
    # Decide auth once, from the address actually bound, and pass it on to worker processes.
    mode = "on" if resolve_auth_mode(settings.auth, host) else "off"
    settings = settings.with_overrides(auth=mode)
    if mode == "on" and workers > 1:
        # Bootstrap once, here, so that a generated token is printed once, not per worker.
        backend = Backend.open(settings)
        try:
            bootstrap_admin_token(backend)
        finally:
            backend.close()
    log.info(
        "Dockyard server on %s (store %s, artifacts %s)",
        _url(host, port),
        redact_url(settings.resolved_db_url),
        settings.resolved_artifact_root,
    )
    common = {"host": host, "port": port, "log_level": log_level, "server_header": False}
    if workers > 1:
        _export_settings(settings)
        uvicorn.run(
            "dockyard.server.app:create_app_from_env", factory=True, workers=workers, **common
        )
    else:
        uvicorn.run(create_app(settings, bind_host=host), **common)
