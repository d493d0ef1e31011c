"""The inference server: ``dockyard serve``. :func:`create_serve_app` builds the ASGI app (plain
Starlette: it starts in well under a second, see :mod:`dockyard.serving.compiled`), :func:`run`
serves it with uvicorn.

Routes
    * Open Inference Protocol (V2) REST: ``GET /v2/health/live``, ``GET /v2/health/ready``
      (503 until every served endpoint's models are loaded and warm), ``GET /v2`` (server
      metadata), ``GET /v2/models/{endpoint}[/versions/{v}]`` (metadata from the primary's
      signature; ``versions/{v}`` selects the variant serving model version ``v``),
      ``.../ready`` and ``POST .../infer`` (JSON tensors of every datatype with a JSON form,
      nested or flat; the binary tensor extension too, as stock Triton clients send it). Errors
      are ``{"error": "..."}`` with 400 (bad input), 404 (unknown endpoint or version), 503
      (not ready) or 500 (the model failed; the message carries an error id).
    * ``POST /endpoints/{name}/predict`` and the MLflow-compatible ``POST
      /endpoints/{name}/invocations``: records, columns, rows, or MLflow's ``dataframe_split``
      / ``dataframe_records`` / ``instances`` / ``inputs`` (and CSV on ``invocations``).
      Answer: ``predictions`` (+ ``probabilities`` for probabilistic classifiers),
      ``request_id``, ``variant``, ``model``, ``model_version``; headers ``X-Request-Id``,
      ``X-Dockyard-Variant``, ``X-Dockyard-Model-Version``. Errors use the API's envelope;
      bad input is a 400 naming the column and the rule.
    * ``GET /endpoints``: the endpoints served here and their policy versions.
    * ``GET /metrics`` (Prometheus), ``GET /healthz``.

Requests carry ``X-Request-Id`` (echoed; else the V2 ``id``; else generated),
``X-Dockyard-Key`` (sticky A/B assignment; or the policy's ``key_field`` in a JSON body) and
``X-Dockyard-Variant`` (force a variant; such requests are marked ``forced``).

Auth is ``dockyard server``'s (``DOCKYARD_AUTH``, bearer tokens, allowed hosts, body limit):
predictions and model metadata need ``endpoint:read`` on the endpoint; health, ``/v2`` and
``/metrics`` are open, like ``/healthz``.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import io
import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.backend import Backend
from dockyard.core.config import Settings, load_settings
from dockyard.core.errors import DockyardError, InvalidInput, NotFound
from dockyard.core.secrets import install as install_secret_filter
from dockyard.core.serving_entities import check_endpoint_name
from dockyard.governance.audit import Actor
from dockyard.governance.permissions import ENDPOINT_READ, Authorizer
from dockyard.registry.packaging.trust import parse_trusted_modules
from dockyard.server._auth import ACTOR_SCOPE_KEY, AuthMiddleware, resolve_auth_mode
from dockyard.server._body import BodyLimitMiddleware
from dockyard.server._hosts import AllowedHostsMiddleware
from dockyard.server._v2 import (
    COLUMN_V2,
    bad,
    v2_datatype,
    v2_output,
    v2_payload,
    v2_tensor,
)
from dockyard.server.errors import (
    CatchAllMiddleware,
    _dockyard_error,
    error_body,
    install_error_handlers,
)

__all__ = ["SERVE_PUBLIC_PATHS", "create_serve_app", "create_serve_app_from_env", "run"]

log = logging.getLogger("dockyard.serve")

#: Paths anyone may call on the inference server (probes, scrapes, server metadata).
SERVE_PUBLIC_PATHS = frozenset(
    {"/healthz", "/v2/health/live", "/v2/health/ready", "/v2", "/metrics", "/ping", "/health"}
)
SERVER_ACTOR = "dockyard-serve"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_JSON = "application/json"


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("dockyard")
    except PackageNotFoundError:
        return "0+unknown"


# -- middleware ------------------------------------------------------------------------------------


class _ServeAuth(AuthMiddleware):
    """The API's bearer-token check, with the inference server's open paths."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in SERVE_PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _ServeHosts(AllowedHostsMiddleware):
    """The API's Host check; health probes and scrapes (no data) are exempt like /healthz."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in ("GET", "HEAD")
            and scope.get("path") in SERVE_PUBLIC_PATHS - {"/v2"}
        ):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _V2ErrorShape:
    """Under ``/v2``, errors answered by the shared middleware (401, 403, 413, 404 route,
    500 catch-all) are reshaped from the API envelope to the protocol's ``{"error": "..."}``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def send_v2(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"] = message
                held["body"] = b""
                return
            if "start" in held and message["type"] == "http.response.body":
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                body = held["body"]
                try:
                    doc = json.loads(body)
                    err = doc.get("error") if isinstance(doc, dict) else None
                    if isinstance(err, dict):
                        body = orjson.dumps({"error": str(err.get("message", ""))})
                except (ValueError, TypeError):
                    pass
                start = held["start"]
                headers = [
                    (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
                ]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_v2)


_FAST_ENDPOINT = re.compile(r"^/endpoints/([^/]+)/(predict|invocations)$")
_FAST_V2 = re.compile(r"^/v2/models/([^/]+)/(?:versions/([^/]+)/)?infer$")


class _FastRoutes:
    """The prediction routes (``POST /endpoints/{name}/predict``, ``.../invocations``, ``POST
    /v2/models/{name}[/versions/{v}]/infer``) answered here, inside every middleware (host
    check, body limit, auth, catch-all, V2 error shape), without the router's path matching
    and exception middleware: the same handlers, the same path patterns as the routes
    declared on the app (which still answer everything else, other methods included), and a
    :class:`~dockyard.core.errors.DockyardError` escaping a handler gets the answer the app's
    exception handler gives. About a third of the event loop's time per prediction went to
    that machinery when the app was FastAPI (benchmarks/serving.py, 1-row requests)."""

    def __init__(self, app: ASGIApp, handlers: dict[str, Any]) -> None:
        self.app = app
        self.handlers = handlers  # filled by create_serve_app once the handlers exist

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and self.handlers
        ):
            path = scope["path"]
            m = _FAST_ENDPOINT.match(path)
            if m is not None:
                request = Request(scope, receive)
                try:
                    response = await self.handlers["endpoint"](
                        request, m.group(1), m.group(2) == "invocations"
                    )
                except DockyardError as exc:
                    response = await _dockyard_error(request, exc)
                await response(scope, receive, send)
                return
            m = _FAST_V2.match(path)
            if m is not None:
                request = Request(scope, receive)
                try:
                    response = await self.handlers["v2"](request, m.group(1), m.group(2))
                except DockyardError as exc:
                    response = await _dockyard_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Routes:
    """``@route.get(path)`` / ``@route.post(path)`` on a Starlette app: the handler gets the
    request (when it takes one) and the path parameters by name, like FastAPI's plain routes."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, path: str) -> Callable[[Any], Any]:
        return self._add(path, "GET")

    def post(self, path: str) -> Callable[[Any], Any]:
        return self._add(path, "POST")

    def _add(self, path: str, method: str) -> Callable[[Any], Any]:
        from starlette.routing import Route

        def deco(fn: Any) -> Any:
            wants_request = "request" in inspect.signature(fn).parameters

            async def endpoint(request: Request) -> Response:
                if wants_request:
                    return await fn(request, **request.path_params)  # type: ignore[no-any-return]
                return await fn(**request.path_params)  # type: ignore[no-any-return]

            self.app.router.routes.append(Route(path, endpoint, methods=[method]))
            return fn

        return deco


# -- helpers --------------------------------------------------------------------------------------


def _json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type=_JSON,
        headers=dict(headers or {}),
    )


def _status_of(exc: DockyardError) -> int:
    """Bad prediction input is a 400 on this server (V2 and MLflow practice)."""
    if isinstance(exc, InvalidInput) and exc.http_status == 422:
        return 400
    return exc.http_status


def _v2_error(exc: BaseException, headers: Mapping[str, str] | None = None) -> Response:
    from dockyard.serving.pool import ModelFailure

    if isinstance(exc, ModelFailure):
        return _json_response({"error": str(exc), "error_id": exc.error_id}, 500, headers)
    assert isinstance(exc, DockyardError)
    return _json_response({"error": exc.message}, _status_of(exc), headers)


def _api_error(exc: BaseException, headers: Mapping[str, str] | None = None) -> Response:
    from dockyard.serving.pool import ModelFailure

    if isinstance(exc, ModelFailure):
        body = error_body("model_error", str(exc), {"error_id": exc.error_id})
        return _json_response(body, 500, headers)
    assert isinstance(exc, DockyardError)
    details = {
        k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
        for k, v in exc.details.items()
    }
    return _json_response(error_body(exc.code, exc.message, details), _status_of(exc), headers)


def _loads(data: bytes, what: str = "request body") -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:  # NaN / Infinity: not JSON, but what Python's json writes; the signature judges them
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}"[:300], rule="bad_json") from None


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    """32 hex characters, unique per process (random prefix + counter): no system call on
    the event loop, where every GIL release waits behind the inference threads."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _request_id(headers: Headers, fallback: Any = None) -> str:
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    if isinstance(fallback, str) and _REQUEST_ID.match(fallback):
        return fallback
    return _new_request_id()


def _actor(request: Request) -> Actor | None:
    return request.scope.get(ACTOR_SCOPE_KEY)  # type: ignore[no-any-return]


def _require_read(request: Request, endpoint: str) -> None:
    actor = _actor(request)
    if actor is not None and actor.authorizer is not None:
        actor.authorizer.require(ENDPOINT_READ, endpoint)


def _may_read(request: Request, endpoint: str) -> bool:
    actor = _actor(request)
    return (
        actor is None
        or actor.authorizer is None
        or actor.authorizer.allows(ENDPOINT_READ, endpoint)
    )


def _answer_headers(served: Any) -> dict[str, str]:
    return {
        "X-Request-Id": served.request_id,
        "X-Dockyard-Variant": served.variant,
        "X-Dockyard-Model-Version": str(served.ref.version),
    }


# -- the app ---------------------------------------------------------------------------------------


def create_serve_app(
    settings: Settings | None = None,
    *,
    endpoints: Sequence[str] | None = None,
    bind_host: str | None = "127.0.0.1",
) -> Starlette:
    """The inference server app for ``endpoints`` (None: all) on ``settings``."""
    settings = settings if settings is not None else load_settings()
    if endpoints is not None:
        endpoints = [check_endpoint_name(e) for e in endpoints]
    auth_on = resolve_auth_mode(settings.auth, bind_host)
    extra_columns = str(settings.model_extra_columns)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from dockyard.governance.redaction_service import RedactionService
        from dockyard.serving.compiled import ModelLoader
        from dockyard.serving.metrics import ServeMetrics
        from dockyard.serving.pool import ModelPool
        from dockyard.serving.runtime import EndpointRuntime
        from dockyard.serving.shadow import ShadowDispatcher

        install_secret_filter()
        parse_trusted_modules(settings.trusted_modules)  # a bad setting stops the start-up
        backend = Backend.open(settings)
        app.state.backend = backend
        actor = Actor(SERVER_ACTOR, authorizer=Authorizer.allow_all(SERVER_ACTOR))
        registry = backend.registry(actor, server=True)
        metrics = ServeMetrics()
        predlog = None
        if settings.serve_log_predictions:
            from dockyard.serving.predlog import PredictionLogWriter

            predlog = PredictionLogWriter.from_settings(
                settings, redaction=RedactionService(backend.store, actor).effective_policy
            )
            metrics.watch_predlog(predlog.stats)
        infer_pool = ThreadPoolExecutor(int(settings.serve_threads), "dockyard-infer")
        shadow_pool = ThreadPoolExecutor(2, "dockyard-shadow")

        loop = asyncio.get_running_loop()
        upgrades: set[asyncio.Task[None]] = set()

        def swap_in(ref: Any) -> None:  # from the compiler's thread
            def start() -> None:
                task = loop.create_task(runtime.upgrade(ref))
                upgrades.add(task)
                task.add_done_callback(upgrades.discard)

            loop.call_soon_threadsafe(start)

        loader = ModelLoader(
            registry,
            runtime=str(settings.serve_runtime),
            threads=int(settings.serve_model_threads),
            on_native=lambda _m: _limit_model_threads(int(settings.serve_model_threads)),
            on_compiled=swap_in,
        )
        pool = ModelPool(
            loader,
            executor=infer_pool,
            shadow_executor=shadow_pool,
            max_batch_rows=int(settings.serve_max_batch_rows),
            max_wait_ms=float(settings.serve_max_wait_ms),
            on_batch=lambda ref, items, rows, _s: metrics.observe_batch(
                ref.model, ref.version, items, rows
            ),
        )
        shadows = ShadowDispatcher(
            metrics=metrics, predlog=predlog, timeout=float(settings.serve_shadow_timeout)
        )
        runtime = EndpointRuntime(
            backend.store,
            pool,
            endpoints=endpoints,
            poll_seconds=float(settings.serve_poll_seconds),
            metrics=metrics,
            predlog=predlog,
            shadows=shadows,
        )
        app.state.runtime = runtime
        app.state.metrics = metrics
        await runtime.start()
        marking = asyncio.create_task(_mark_worker_ready(runtime))
        if not auth_on:
            log.warning(
                "auth off: every request acts as 'anonymous' (bind to a non-loopback address "
                "or set DOCKYARD_AUTH=on to require tokens)"
            )
        # Objects alive now (and the models, frozen again once loaded: _mark_worker_ready)
        # are never scanned again by the collector. No full collection first: it takes about
        # 40 ms of the start-up and there is little garbage yet.
        gc.freeze()
        # Collect young garbage less often: with the default thresholds (700, 10, 10) the
        # allocations of a few hundred requests a second (frames, dicts, small arrays) set off
        # a collection every few ms and a full one often enough to put tens of ms on the p99.
        # benchmarks/serving.py: 1-row requests at 16 connections, p99 80 -> 26 ms, throughput
        # about 1.3x. Cycles still die in the young generations; the full pass still runs.
        gc.set_threshold(20_000, 20, 1_000)
        try:
            yield
        finally:
            marking.cancel()
            loader.close()
            await runtime.stop()
            infer_pool.shutdown(wait=False, cancel_futures=True)
            shadow_pool.shutdown(wait=False, cancel_futures=True)
            if predlog is not None:
                await asyncio.to_thread(predlog.close)
            backend.close()

    # Plain Starlette, not FastAPI: these routes take no validated models, and FastAPI alone
    # costs about a quarter of a second of start-up (the server is ready in under one).
    app = Starlette(lifespan=lifespan)
    app.router.redirect_slashes = False
    route = _Routes(app)
    app.state.settings = settings
    app.state.auth_enabled = auth_on
    install_error_handlers(app)
    fast_handlers: dict[str, Any] = {}
    app.add_middleware(_FastRoutes, handlers=fast_handlers)  # innermost: after auth
    app.add_middleware(_ServeAuth, enabled=auth_on)
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(settings.max_body_bytes))
    app.add_middleware(_ServeHosts, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(_V2ErrorShape)

    def runtime_of(request: Request) -> Any:
        return request.app.state.runtime

    # -- health, metadata, metrics ---------------------------------------------------------

    @route.get("/healthz")
    @route.get("/v2/health/live")
    async def live() -> Response:
        return _json_response({"live": True})

    @route.get("/v2/health/ready")
    @route.get("/ping")
    @route.get("/health")
    async def ready(request: Request) -> Response:
        rt = runtime_of(request)
        ok = bool(rt.ready) and _all_workers_ready()
        return _json_response({"ready": ok}, 200 if ok else 503)

    @route.get("/v2")
    async def server_metadata() -> Response:
        return _json_response(
            {"name": "dockyard", "version": _version(), "extensions": ["binary_tensor_data"]}
        )

    @route.get("/metrics")
    async def metrics_route(request: Request) -> Response:
        from dockyard.serving.metrics import CONTENT_TYPE

        body = await asyncio.to_thread(request.app.state.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    @route.get("/endpoints")
    async def list_served(request: Request) -> Response:
        rt = runtime_of(request)
        out = []
        for name in sorted(rt.known | set(rt.tables)):
            if not _may_read(request, name):
                continue
            t = rt.tables.get(name)
            out.append(
                {
                    "name": name,
                    "ready": t is not None,
                    "policy_version": None if t is None else t.version,
                    "policy": None if t is None else t.policy.describe(),
                }
            )
        return _json_response({"endpoints": out, "ready": bool(rt.ready)})

    def _v2_metadata(request: Request, name: str, version: int | None) -> dict[str, Any]:
        _require_read(request, name)
        table = runtime_of(request).table(name)
        if version is None:
            handle = table.primary
        else:
            variant = table.variant_for_version(version)
            if variant is None:
                raise NotFound(f"endpoint {name!r} serves no model version {version}")
            handle = table.variants[variant]
        sig = handle.signature
        schema = sig.get("inputs")
        if schema is not None and schema.get("kind") == "columns":
            inputs = [
                {"name": c["name"], "datatype": COLUMN_V2.get(c["type"], "BYTES"), "shape": [-1]}
                for c in schema["columns"]
            ]
        elif schema is not None:
            import numpy as np

            inputs = [
                {
                    "name": "input-0",
                    "datatype": v2_datatype(np.empty(0, dtype=schema["dtype"])),
                    "shape": list(schema["shape"]),
                }
            ]
        else:
            inputs = []
        out_sig = sig.get("outputs") or {}
        pred_type = "BYTES"
        if out_sig.get("kind") == "tensor":
            import numpy as np

            try:
                pred_type = v2_datatype(np.empty(0, dtype=out_sig["dtype"]))
            except TypeError:
                pred_type = "BYTES"
        outputs = [{"name": "predict", "datatype": pred_type, "shape": [-1]}]
        if handle.has_proba:
            n = len(handle.classes) if handle.classes else -1
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, n]})
        versions = sorted({str(h.ref.version) for h in table.variants.values()})
        return {
            "name": name,
            "versions": versions,
            "platform": f"dockyard_{handle.model.flavor}",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "model": handle.ref.model,
                "model_version": str(handle.ref.version),
                "policy_version": str(table.version),
                "runtime": handle.runtime,
            },
        }

    def _version_arg(version: str | None) -> int | None:
        if version is None:
            return None
        if not version.isdigit() or not 0 < int(version) < 2**31:
            raise NotFound(f"model version {version!r} is not a version number")
        return int(version)

    async def _v2_meta_route(request: Request, name: str, version: str | None) -> Response:
        try:
            return _json_response(_v2_metadata(request, name, _version_arg(version)))
        except DockyardError as exc:
            return _v2_error(exc)

    @route.get("/v2/models/{name}")
    async def v2_model(request: Request, name: str) -> Response:
        return await _v2_meta_route(request, name, None)

    @route.get("/v2/models/{name}/versions/{version}")
    async def v2_model_version(request: Request, name: str, version: str) -> Response:
        return await _v2_meta_route(request, name, version)

    async def _v2_ready_route(request: Request, name: str, version: str | None) -> Response:
        try:
            _require_read(request, name)
            v = _version_arg(version)
            table = runtime_of(request).table(name)
            if v is not None and table.variant_for_version(v) is None:
                raise NotFound(f"endpoint {name!r} serves no model version {v}")
            return _json_response({"name": name, "ready": True})
        except DockyardError as exc:
            if exc.http_status == 503:
                return _json_response({"name": name, "ready": False}, 503)
            return _v2_error(exc)

    @route.get("/v2/models/{name}/ready")
    async def v2_ready(request: Request, name: str) -> Response:
        return await _v2_ready_route(request, name, None)

    @route.get("/v2/models/{name}/versions/{version}/ready")
    async def v2_version_ready(request: Request, name: str, version: str) -> Response:
        return await _v2_ready_route(request, name, version)

    # -- inference ---------------------------------------------------------------------------

    async def _v2_infer(request: Request, name: str, version: str | None) -> Response:
        started = time.perf_counter()
        arrived = int(time.time() * 1000)
        body = await request.body()
        request_id = _request_id(request.headers)
        try:
            _require_read(request, name)
            v = _version_arg(version)
            header_len = request.headers.get("inference-header-content-length")
            binary: memoryview | None = None
            if header_len is not None:
                if not header_len.strip().isdigit() or int(header_len) > len(body):
                    raise InvalidInput(
                        "header Inference-Header-Content-Length must be the byte length of the "
                        "JSON part of the body"
                    )
                n = int(header_len)
                binary = memoryview(body)[n:]
                body = body[:n]
            req = _loads(body)
            if not isinstance(req, Mapping) or not isinstance(req.get("inputs"), list):
                raise bad("a V2 inference request is an object with a list 'inputs'")
            req_id = req.get("id")
            if req_id is not None and not isinstance(req_id, str):
                raise bad("'id' must be a string")
            if req_id is not None:
                request_id = _request_id(request.headers, req_id)
            offset = 0
            tensors = []
            for inp in req["inputs"]:
                tname, arr, offset = v2_tensor(inp, binary, offset)
                tensors.append((tname, arr))
            if not tensors:
                raise bad("'inputs' is empty: give at least one input tensor")
            req_params = req.get("parameters") or {}
            binary_default = bool(
                isinstance(req_params, Mapping) and req_params.get("binary_data_output")
            )
            wanted = req.get("outputs")
            if wanted is not None and (
                not isinstance(wanted, list)
                or not all(
                    isinstance(o, Mapping) and isinstance(o.get("name"), str) for o in wanted
                )
            ):
                raise bad("'outputs' must be a list of objects with a 'name'")
            key = request.headers.get("x-dockyard-key")
            if key is None and isinstance(req_params, Mapping):
                pk = req_params.get("dockyard_key")
                key = str(pk) if pk is not None else None
            served = await runtime_of(request).infer(
                name,
                lambda h: v2_payload(tensors, h.model, extra_columns),
                request_id=request_id,
                arrived_ms=arrived,
                started=started,
                key=key,
                forced=request.headers.get("x-dockyard-variant"),
                model_version=v,
            )
        except (DockyardError, Exception) as exc:
            from dockyard.serving.pool import ModelFailure

            if isinstance(exc, DockyardError | ModelFailure):
                response = _v2_error(exc, {"X-Request-Id": request_id})
                runtime_of(request).record_failure(
                    name,
                    exc,
                    response.status_code,
                    request_id=request_id,
                    arrived_ms=arrived,
                    started=started,
                )
                return response
            raise
        pred = served.prediction
        available = {"predict": pred.predictions}
        if pred.probabilities is not None:
            available["predict_proba"] = pred.probabilities
        if wanted is None:
            selected = [(n, binary_default) for n in available]
        else:
            selected = []
            for o in wanted:
                if o["name"] not in available:
                    return _v2_error(
                        bad(
                            f"unknown output {o['name']!r}; this model gives {', '.join(available)}"
                        ),
                        {"X-Request-Id": request_id},
                    )
                p = o.get("parameters") or {}
                selected.append((o["name"], bool(p.get("binary_data", binary_default))))
        outputs, chunks = [], []
        for oname, as_binary in selected:
            out, raw = v2_output(oname, available[oname], as_binary)
            outputs.append(out)
            if raw is not None:
                chunks.append(raw)
        doc = {
            "model_name": name,
            "model_version": str(served.ref.version),
            "id": request_id,
            "parameters": {"variant": served.variant, "model": served.ref.model},
            "outputs": outputs,
        }
        headers = _answer_headers(served)
        if not chunks:
            return _json_response(doc, 200, headers)
        head = orjson.dumps(doc)
        headers["Inference-Header-Content-Length"] = str(len(head))
        return Response(
            head + b"".join(chunks), media_type="application/octet-stream", headers=headers
        )

    @route.post("/v2/models/{name}/infer")
    async def v2_infer(request: Request, name: str) -> Response:
        return await _v2_infer(request, name, None)

    @route.post("/v2/models/{name}/versions/{version}/infer")
    async def v2_infer_version(request: Request, name: str, version: str) -> Response:
        return await _v2_infer(request, name, version)

    async def _predict(request: Request, name: str, csv_ok: bool) -> Response:
        from dockyard.serving.inputs import payload_from_json
        from dockyard.serving.pool import ModelFailure
        from dockyard.serving.router import find_key

        started = time.perf_counter()
        arrived = int(time.time() * 1000)
        request_id = _request_id(request.headers)
        try:
            check_endpoint_name(name)
            _require_read(request, name)
            raw = await request.body()
            ctype = (request.headers.get("content-type") or _JSON).lower()
            mime, _, params = ctype.partition(";")
            charset = re.search(r"charset=([^;\s]+)", params)
            if charset and charset.group(1).strip('"').lower() not in ("utf-8", "utf8"):
                return _json_response(
                    error_body(
                        "unsupported_media_type",
                        f"charset {charset.group(1)!r} is not supported: send UTF-8",
                    ),
                    415,
                    {"X-Request-Id": request_id},
                )
            if csv_ok and mime.strip() == "text/csv":
                body = await asyncio.to_thread(_read_csv, raw)
            elif mime.strip() not in (_JSON, "") and not mime.strip().endswith("+json"):
                return _json_response(
                    error_body(
                        "unsupported_media_type",
                        f"content type {mime.strip()!r} is not supported: send application/json"
                        + (" or text/csv" if csv_ok else ""),
                    ),
                    415,
                    {"X-Request-Id": request_id},
                )
            else:
                body = _loads(raw)
            rt = runtime_of(request)
            table = rt.table(name)
            key = request.headers.get("x-dockyard-key") or find_key(body, table.policy.key_field)
            served = await rt.infer(
                name,
                lambda h: payload_from_json(body, h.model, extra_columns=extra_columns),
                request_id=request_id,
                arrived_ms=arrived,
                started=started,
                key=key,
                forced=request.headers.get("x-dockyard-variant"),
            )
        except (DockyardError, ModelFailure) as exc:
            response = _api_error(exc, {"X-Request-Id": request_id})
            runtime_of(request).record_failure(
                name,
                exc,
                response.status_code,
                request_id=request_id,
                arrived_ms=arrived,
                started=started,
            )
            return response
        doc: dict[str, Any] = {"predictions": served.predictions}
        if served.probabilities is not None:
            doc["probabilities"] = served.probabilities
            classes = served.handle.classes_json
            if classes:
                doc["classes"] = classes
        doc.update(
            request_id=request_id,
            endpoint=name,
            variant=served.variant,
            model=served.ref.model,
            model_version=served.ref.version,
        )
        if served.forced:
            doc["forced"] = True
        return _json_response(doc, 200, _answer_headers(served))

    @route.post("/endpoints/{name}/predict")
    async def predict(request: Request, name: str) -> Response:
        return await _predict(request, name, csv_ok=False)

    @route.post("/endpoints/{name}/invocations")
    async def invocations(request: Request, name: str) -> Response:
        return await _predict(request, name, csv_ok=True)

    fast_handlers.update(endpoint=_predict, v2=_v2_infer)

    @route.post("/endpoints/{name}/labels")
    async def labels(request: Request, name: str) -> Response:
        """Ground-truth labels, keyed by request id: ``{"<request id>": label, ...}`` or a list
        of ``{"request_id", "label"[, "row"]}`` (needs ``endpoint:deploy``; audited)."""
        from dockyard.server._auth import anonymous_actor
        from dockyard.serving.labels import LabelService, LabelStore

        request_id = _request_id(request.headers)
        try:
            check_endpoint_name(name)
            body = _loads(await request.body())
            backend = request.app.state.backend
            store = LabelStore(backend.artifacts.root_uri, backend.artifacts.cipher)
            service = LabelService(backend.store, store, _actor(request) or anonymous_actor())
            result = await asyncio.to_thread(service.ingest, name, body, source="api")
        except DockyardError as exc:
            return _api_error(exc, {"X-Request-Id": request_id})
        return _json_response(result.to_dict(), 201, {"X-Request-Id": request_id})

    return app


def _limit_model_threads(n: int) -> None:
    """Cap the native thread pools (OpenMP, BLAS) the loaded models use. Process-wide, and
    only for libraries loaded by now: called after each model load."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, n))


def _read_csv(raw: bytes) -> dict[str, list[Any]]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(raw))
    except Exception as exc:
        raise InvalidInput(
            f"request body is not valid CSV: {type(exc).__name__}: {exc}"[:300]
        ) from None
    from dockyard.registry.packaging.signature import json_safe

    return {str(k): json_safe(list(v)) for k, v in frame.to_dict("list").items()}


# -- running ------------------------------------------------------------------------------------

_ENDPOINTS_ENV = "DOCKYARD_SERVE_ENDPOINTS"
#: With ``--workers N``: a private folder where each worker leaves a marker named after its
#: pid once its models are loaded; the server is ready when N live workers have.
_READY_DIR_ENV = "DOCKYARD_SERVE_READY_DIR"
_WORKERS_ENV = "DOCKYARD_SERVE_WORKERS"


def _all_workers_ready() -> bool:
    """True in a single process; with worker processes, when every one of them has loaded
    its models (a probe answered by the first ready worker must not send traffic to a
    still-loading one)."""
    import os

    folder, wanted = os.environ.get(_READY_DIR_ENV), os.environ.get(_WORKERS_ENV)
    if not folder or not wanted:
        return True
    live = 0
    for name in os.listdir(folder):
        try:
            os.kill(int(name), 0)  # a worker that died (and was replaced) no longer counts
        except (ValueError, ProcessLookupError):
            continue
        except PermissionError:
            pass
        live += 1
    return live >= int(wanted)


async def _mark_worker_ready(runtime: Any) -> None:
    """Once the models are loaded: move them out of the collector's sight (gc.freeze), and
    with worker processes leave this worker's marker."""
    import os

    while not runtime.ready:
        await asyncio.sleep(0.01)
    gc.freeze()
    folder = os.environ.get(_READY_DIR_ENV)
    if folder:
        with open(os.path.join(folder, str(os.getpid())), "w"):
            pass


def create_serve_app_from_env() -> Starlette:
    """Factory for uvicorn worker processes (``--workers``): settings and the endpoint list
    from the environment."""
    import os

    names = os.environ.get(_ENDPOINTS_ENV)
    endpoints = [n for n in names.split(",") if n] if names else None
    return create_serve_app(load_settings(), endpoints=endpoints, bind_host=None)


def run(
    settings: Settings | None = None,
    *,
    endpoints: Sequence[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve ``endpoints`` (None: all) with uvicorn until interrupted (``dockyard serve``)."""
    import os

    import uvicorn

    from dockyard.server._process import configure_logging as _configure_logging
    from dockyard.server._process import export_settings as _export_settings
    from dockyard.server._process import url as _url

    settings = settings if settings is not None else load_settings()
    # Before any model library starts its thread pool (also in worker processes); an
    # OMP_NUM_THREADS the operator set wins.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(settings.serve_model_threads))))
    _configure_logging(log_level)
    logging.getLogger("dockyard.serve").setLevel(log_level.upper())
    mode = "on" if resolve_auth_mode(settings.auth, host) else "off"
    settings = settings.with_overrides(auth=mode)
    if endpoints is not None:
        endpoints = [check_endpoint_name(e) for e in endpoints]
    log.info(
        "Dockyard inference server on %s serving %s (auth %s)",
        _url(host, port),
        ", ".join(endpoints) if endpoints else "every endpoint",
        mode,
    )
    common = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "server_header": False,
        "access_log": bool(settings.serve_access_log),
    }
    if workers > 1:
        import tempfile

        _export_settings(settings)
        if endpoints:
            os.environ[_ENDPOINTS_ENV] = ",".join(endpoints)
        os.environ[_READY_DIR_ENV] = tempfile.mkdtemp(prefix="dockyard-serve-ready-")  # 0700
        os.environ[_WORKERS_ENV] = str(workers)
        uvicorn.run(
            "dockyard.server.serve_app:create_serve_app_from_env",
            factory=True,
            workers=workers,
            **common,
        )
    else:
        uvicorn.run(create_serve_app(settings, endpoints=endpoints, bind_host=host), **common)
