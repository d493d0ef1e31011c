"""The endpoint runtime: what the inference server serves, kept in step with the store.

:class:`EndpointRuntime` polls the store for the endpoints' policy versions (one cheap query,
every ``poll_seconds``). When an endpoint's version changes it reads the new policy, loads and
warms every model the policy names (live variants, weight-0 variants and shadows) *first*, in
a thread, and only then replaces the endpoint's routing table (:class:`EndpointTable`, an
immutable value) in one assignment. A request takes the table once, when it starts, and keeps
its model handle to the end: in-flight requests finish on the model they started with, new
ones go to the new policy. A policy whose models fail to load is logged and counted
(``dockyard_serve_model_load_failures_total``) and the old table keeps serving; the load is
retried with a growing back-off. A deleted endpoint stops being served.

The server is *ready* when every served endpoint (all of them, or the ones named) has a table;
once ready an endpoint stays servable while later policies fail to load.

:meth:`EndpointRuntime.infer` is the request path shared by the protocols: route (sticky key,
forced variant or model version), check the input for the variant's model (``parse``, on the
event loop, before batching), predict through the variant's batcher, log to the prediction
log, meter, and hand a copy to the shadows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.core.errors import DockyardError, NotFound, Unavailable
from dockyard.core.serving_entities import Endpoint, ModelRef, TrafficPolicy
from dockyard.registry.packaging.errors import ModelInputError
from dockyard.serving.inputs import Payload
from dockyard.serving.pool import ModelFailure, ModelHandle, ModelPool, Prediction
from dockyard.serving.router import Assignment, Router
from dockyard.serving.shadow import ShadowDispatcher, ShadowJob

__all__ = ["EndpointRuntime", "EndpointTable", "Served"]

log = logging.getLogger("dockyard.serving")
_MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class EndpointTable:
    """One policy version of one endpoint, with every model it needs loaded."""

    name: str
    version: int
    policy: TrafficPolicy
    router: Router
    variants: Mapping[str, ModelHandle]
    shadows: Mapping[str, ModelHandle]

    @property
    def primary(self) -> ModelHandle:
        return self.variants[self.policy.primary]

    def variant_for_version(self, version: int) -> str | None:
        """The variant serving model version ``version`` (the primary first)."""
        names = sorted(self.variants, key=lambda n: (n != self.policy.primary, n))
        for n in names:
            if self.variants[n].ref.version == version:
                return n
        return None

    def refs(self) -> set[ModelRef]:
        return {h.ref for h in [*self.variants.values(), *self.shadows.values()]}


@dataclass(slots=True)
class Served:
    """A request's answer and who gave it."""

    request_id: str
    endpoint: str
    variant: str
    handle: ModelHandle
    prediction: Prediction
    forced: bool
    predictions: list[Any] = field(default_factory=list)
    probabilities: list[Any] | None = None

    @property
    def ref(self) -> ModelRef:
        return self.handle.ref


@dataclass(slots=True)
class _Failed:
    version: int
    retry_at: float
    attempts: int


class EndpointRuntime:
    """Serve ``endpoints`` (None: every endpoint of the store)."""

    def __init__(
        self,
        store: Any,
        pool: ModelPool,
        *,
        endpoints: Sequence[str] | None = None,
        poll_seconds: float = 0.5,
        metrics: Any = None,
        predlog: Any = None,
        shadows: ShadowDispatcher | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.names = None if endpoints is None else frozenset(endpoints)
        self.poll_seconds = float(poll_seconds)
        self.metrics = metrics
        self.predlog = predlog
        self.shadows = shadows
        self.tables: dict[str, EndpointTable] = {}
        self.known: set[str] = set(self.names or ())
        self.ready = False
        self.polled = False
        self._failed: dict[str, _Failed] = {}
        self._task: asyncio.Task[None] | None = None
        self._store_error: str | None = None
        self._missing_logged: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.shadows is not None:
            self.shadows.start()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self.shadows is not None:
            await self.shadows.stop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the endpoint runtime's refresh failed; retrying")
            await asyncio.sleep(self.poll_seconds)

    # -- keeping in step with the store ---------------------------------------------------------

    async def refresh(self) -> None:
        """One poll: load and swap in every endpoint whose policy version changed."""
        try:
            versions: dict[str, int] = await asyncio.to_thread(
                self.store.read, lambda u: u.endpoint_versions()
            )
        except Exception as exc:
            what = exc.message if isinstance(exc, DockyardError) else type(exc).__name__
            if self._store_error != what:
                log.error("cannot read endpoint versions from the store (%s); still serving", what)
                self._store_error = what
            return
        self._store_error = None
        wanted = {n: v for n, v in versions.items() if self.names is None or n in self.names}
        for name in sorted((self.names or set()) - set(versions) - self._missing_logged):
            log.warning("endpoint %s does not exist (yet): not ready until it is deployed", name)
            self._missing_logged.add(name)
        for name in list(self.tables):
            if name not in wanted:
                del self.tables[name]
                log.info("endpoint %s was deleted: no longer served", name)
                if self.metrics is not None:
                    try:
                        self.metrics.policy_version.remove(name)
                    except KeyError:
                        pass
        for name, version in sorted(wanted.items()):
            cur = self.tables.get(name)
            if cur is not None and cur.version == version:
                continue
            failed = self._failed.get(name)
            if (
                failed is not None
                and failed.version == version
                and time.monotonic() < failed.retry_at
            ):
                continue
            await self._load_endpoint(name, version)
        self.known = set(wanted) | set(self.names or ())
        self.polled = True
        self.ready = all(n in self.tables for n in self.known)
        if self.metrics is not None:
            self.metrics.ready.set(1 if self.ready else 0)
        in_use: set[ModelRef] = set()
        for t in self.tables.values():
            in_use |= t.refs()
        self.pool.retain(in_use)

    async def upgrade(self, ref: ModelRef) -> None:
        """Load ``ref`` again and swap the new handle into every table that uses it (a model
        whose compiled form is now ready); in-flight requests finish on the old handle."""
        try:
            handle = await asyncio.to_thread(self.pool.replace, ref)
        except Exception as exc:
            what = exc.message if isinstance(exc, DockyardError) else f"{type(exc).__name__}: {exc}"
            log.error("reloading model %s failed (%s); still serving the loaded one", ref, what)
            return
        if handle is None:
            return
        if self.metrics is not None:
            self.metrics.observe_model(handle)
        for name, table in list(self.tables.items()):
            if ref not in table.refs():
                continue
            self.tables[name] = dataclasses.replace(
                table,
                variants={n: handle if h.ref == ref else h for n, h in table.variants.items()},
                shadows={n: handle if h.ref == ref else h for n, h in table.shadows.items()},
            )
        log.info("model %s now answers on %s", ref, handle.runtime)

    async def _load_endpoint(self, name: str, version: int) -> None:
        started = time.perf_counter()
        try:
            ep: Endpoint | None = await asyncio.to_thread(
                self.store.read, lambda u: u.get_endpoint(name)
            )
            if ep is None:
                return
            table = await asyncio.to_thread(self._build, ep)
        except Exception as exc:
            prev = self._failed.get(name)
            attempts = prev.attempts + 1 if prev is not None and prev.version == version else 1
            backoff = min(_MAX_BACKOFF, 2.0**attempts)
            self._failed[name] = _Failed(version, time.monotonic() + backoff, attempts)
            what = exc.message if isinstance(exc, DockyardError) else f"{type(exc).__name__}: {exc}"
            cur = self.tables.get(name)
            keeping = (
                f"still serving policy version {cur.version}"
                if cur is not None
                else "not served yet"
            )
            log.error(
                "endpoint %s policy version %s failed to load (%s); %s; retrying in %.0f s",
                name,
                version,
                what,
                keeping,
                backoff,
            )
            if self.metrics is not None:
                self.metrics.load_failures.labels(name).inc()
            return
        self._failed.pop(name, None)
        old = self.tables.get(name)
        if old is not None and old.version > table.version:
            return  # a newer one got in meanwhile
        self.tables[name] = table  # the swap: one assignment
        if self.metrics is not None:
            self.metrics.policy_version.labels(name).set(table.version)
        log.info(
            "endpoint %s now serves policy version %s (%s), loaded in %.0f ms",
            name,
            table.version,
            table.policy.describe(),
            (time.perf_counter() - started) * 1000,
        )

    def _build(self, ep: Endpoint) -> EndpointTable:
        """Load (and warm) every model of the policy; blocking."""
        p = ep.policy
        variants = {n: self._load(ref) for n, ref in sorted(p.variants.items())}
        shadows = {n: self._load(ref) for n, ref in sorted(p.shadows.items())}
        return EndpointTable(ep.name, ep.version, p, Router(p), variants, shadows)

    def _load(self, ref: ModelRef) -> ModelHandle:
        handle = self.pool.load(ref)
        if self.metrics is not None:
            self.metrics.observe_model(handle)
        return handle

    # -- the request path ------------------------------------------------------------------------

    def table(self, endpoint: str) -> EndpointTable:
        """The endpoint's current table; NotFound or Unavailable (503) when there is none."""
        t = self.tables.get(endpoint)
        if t is not None:
            return t
        if endpoint in self.known or (
            not self.polled and (self.names is None or endpoint in self.names)
        ):
            raise Unavailable(
                f"endpoint {endpoint!r} is not ready: its models are loading (or failed to load: "
                "see the server log)",
                endpoint=endpoint,
            )
        raise NotFound(
            f"endpoint {endpoint!r} is not served here"
            + (
                ""
                if self.names is None
                else f" (this server serves {', '.join(sorted(self.names))})"
            ),
            endpoint=endpoint,
        )

    async def infer(
        self,
        endpoint: str,
        parse: Callable[[ModelHandle], Payload],
        *,
        request_id: str,
        arrived_ms: int,
        started: float,
        key: str | None = None,
        forced: str | None = None,
        model_version: int | None = None,
        input_status: int = 400,
    ) -> Served:
        """Answer one request; raises NotFound, Unavailable, InvalidInput (a bad forced variant
        or version), ModelInputError (the input, status ``input_status`` in the log) or
        ModelFailure (the model raised)."""
        table = self.table(endpoint)
        if model_version is not None:
            variant = table.variant_for_version(model_version)
            if variant is None:
                served = sorted({h.ref.version for h in table.variants.values()})
                raise NotFound(
                    f"endpoint {endpoint!r} has no variant serving model version {model_version} "
                    f"(versions served: {', '.join(map(str, served))})",
                    endpoint=endpoint,
                )
            forced = variant
        assignment: Assignment = table.router.assign(key, forced)
        handle = table.variants[assignment.variant]
        payload: Payload | None = None
        try:
            payload = parse(handle)
            prediction: Prediction = await handle.batcher.submit(payload, payload.rows)
        except (ModelInputError, ModelFailure) as exc:
            input_error = isinstance(exc, ModelInputError)
            status = input_status if input_error else 500
            self._record(
                endpoint,
                assignment,
                handle,
                request_id,
                arrived_ms,
                started,
                payload,
                None,
                status,
                exc.message if isinstance(exc, ModelInputError) else str(exc),
            )
            if self.metrics is not None:
                self.metrics.observe_error(
                    endpoint, assignment.variant, "input" if input_error else "model"
                )
            exc.recorded = True  # type: ignore[union-attr]
            raise
        served = Served(
            request_id,
            endpoint,
            assignment.variant,
            handle,
            prediction,
            assignment.forced,
            prediction.predictions_list(),
            prediction.probabilities_list(),
        )
        self._record(
            endpoint,
            assignment,
            handle,
            request_id,
            arrived_ms,
            started,
            payload,
            served,
            200,
            None,
        )
        if self.shadows is not None and table.shadows and not assignment.forced:
            for sname, shandle in table.shadows.items():
                self.shadows.submit(
                    ShadowJob(
                        endpoint,
                        sname,
                        shandle,
                        parse,
                        prediction,
                        handle.is_classifier,
                        request_id,
                        arrived_ms,
                        assignment.key_hash,
                    )
                )
        return served

    def record_failure(
        self,
        endpoint: str,
        exc: BaseException,
        status: int,
        *,
        request_id: str,
        arrived_ms: int,
        started: float,
    ) -> None:
        """Meter and log a request of a served endpoint that failed before it reached a
        variant (unreadable body, bad header, not ready); no-op for other endpoint names (no
        metric labels from arbitrary paths) and for failures :meth:`infer` recorded."""
        if getattr(exc, "recorded", False) or (
            endpoint not in self.tables and endpoint not in self.known
        ):
            return
        seconds = time.perf_counter() - started
        kind = "unavailable" if status == 503 else "auth" if status in (401, 403) else "input"
        if self.metrics is not None:
            self.metrics.observe_request(endpoint, "", status, seconds)
            self.metrics.observe_error(endpoint, "", kind)
        if self.predlog is None:
            return
        from dockyard.serving.predlog import PredictionRecord

        message = exc.message if isinstance(exc, DockyardError) else type(exc).__name__
        self.predlog.log(
            PredictionRecord(
                request_id=request_id,
                endpoint=endpoint,
                variant="",
                model="",
                model_version=None,
                time=arrived_ms,
                latency_ms=seconds * 1000,
                status=status,
                error=message,
            )
        )

    def _record(
        self,
        endpoint: str,
        assignment: Assignment,
        handle: ModelHandle,
        request_id: str,
        arrived_ms: int,
        started: float,
        payload: Payload | None,
        served: Served | None,
        status: int,
        error: str | None,
    ) -> None:
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.observe_request(endpoint, assignment.variant, status, seconds)
        if self.predlog is None:
            return
        from dockyard.serving.predlog import records_for_request

        try:
            records = records_for_request(
                request_id=request_id,
                endpoint=endpoint,
                variant=assignment.variant,
                model=handle.ref.model,
                model_version=handle.ref.version,
                time=arrived_ms,
                latency_ms=seconds * 1000,
                inputs=payload.log_rows() if payload is not None else None,
                predictions=None if served is None else served.predictions,
                probas=None if served is None else served.probabilities,
                status=status,
                forced=assignment.forced,
                error=error,
                key_hash=assignment.key_hash,
            )
            self.predlog.log(records)
        except Exception:  # logging never fails a request
            log.exception("could not log request %s to the prediction log", request_id)
