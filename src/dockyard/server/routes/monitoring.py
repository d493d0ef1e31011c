"""Monitoring routes under ``/api/v1``: runs, reports, series, events and declared monitors.

=======  ====================================================  ====================================
method   path                                                  does
=======  ====================================================  ====================================
POST     /endpoints/{name}/monitoring/runs                     ``{window, since, until, monitor,
                                                               record}`` -> the run (201 stored)
GET      /endpoints/{name}/monitoring/runs?monitor=&limit=     stored runs, newest window first
GET      /endpoints/{name}/monitoring/series?metric=&feature=  time series points
         &since=&monitor=
GET      /monitoring/runs/{run_id}                             one run with its whole result
GET      /monitoring/runs/{run_id}/report?format=html|json     the report: a self-contained page
GET      /monitoring/events?endpoint=&after=&kind=&limit=      events, oldest first after a cursor
GET      /monitoring/metrics                                   Prometheus text: newest run of each
                                                               monitor
GET      /alerts?status=&endpoint=&limit=                      webhook deliveries (dead letters:
                                                               status=dead), newest first
GET      /alerts/{id}                                          one delivery
POST     /alerts/{id}/replay                                   a dead delivery back to pending
GET      /endpoints/{name}/monitors                            declared monitors
PUT      /endpoints/{name}/monitors/{monitor}                  ``{spec, enabled, expected_version}``
GET      /endpoints/{name}/monitors/{monitor}                  one monitor
DELETE   /endpoints/{name}/monitors/{monitor}                  -> 204
=======  ====================================================  ====================================

Every rule lives in :class:`~dockyard.monitoring.service.MonitorService` (permissions,
validation, audit), built with ``server=True``: a monitor spec naming a reference *file* is
refused, because the file would be read from the server's disk -- a path from a caller
never reaches the filesystem. References come from the model's training profile, or
are set with ``dockyard monitor declare --reference`` on the machine that holds the file.

The HTML report is served with a Content-Security-Policy that allows no script, no network
fetch and no frame: the page needs none, and data in it (feature names, categories) is
escaped, so even a bug in escaping could not run code in the viewer's browser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from dockyard.server.routes._common import no_content, ok, request_actor
from dockyard.server.schemas import _Body
from dockyard.server.schemas_endpoints import ENDPOINT_NAME, PRINTABLE

if TYPE_CHECKING:
    from dockyard.backend import Backend

router = APIRouter(tags=["monitoring"])

_MS = Field(default=None, ge=0, le=2**53)
Text64 = Annotated[str, StringConstraints(max_length=64, pattern=PRINTABLE)]
MONITOR_NAME = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
_REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


async def alert_service(request: Request) -> Any:
    from dockyard.monitoring.alerts import AlertService

    backend: Backend = request.app.state.backend
    return AlertService(backend.store, request_actor(request))


Alerts = Annotated[Any, Depends(alert_service)]


async def monitor_service(request: Request) -> Any:
    backend: Backend = request.app.state.backend
    return backend.monitoring(request_actor(request), server=True)


Monitors = Annotated[Any, Depends(monitor_service)]
Name = Annotated[
    str, Path(max_length=128, pattern=ENDPOINT_NAME, description="The endpoint's name.")
]
MonitorName = Annotated[
    str, Path(max_length=128, pattern=MONITOR_NAME, description="The monitor's name.")
]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many.")]
Ms = Annotated[int | None, Query(ge=0, le=2**53, description="Epoch milliseconds.")]


class RunBody(_Body):
    """Evaluate a window now; see ``MonitorService.run``."""

    window: Text64 | None = None
    since: int | None = _MS
    until: int | None = _MS
    monitor: Annotated[str, StringConstraints(max_length=128, pattern=MONITOR_NAME)] | None = None
    record: bool = True


class MonitorBody(_Body):
    """Declare or replace a monitor; ``spec`` as ``MonitorSpec`` (window, schedule, features,
    tests, drift_share, min_rows, performance, events, webhooks)."""

    spec: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    expected_version: int | None = Field(default=None, ge=0, le=2**31)


@router.post(
    "/endpoints/{name}/monitoring/runs",
    summary="Evaluate a window of the endpoint's traffic: drift, quality, performance",
    responses={201: {"description": "The run was stored."}},
)
def run_monitor(name: Name, service: Monitors, body: RunBody | None = None) -> Response:
    body = body or RunBody()
    run = service.run(
        name,
        monitor=body.monitor,
        window=body.window,
        since=body.since,
        until=body.until,
        record=body.record,
    )
    return ok({**run.summary(), "result": run.result}, 201 if body.record else 200)


@router.get("/endpoints/{name}/monitoring/runs", summary="Stored monitor runs of an endpoint")
def list_runs(
    name: Name,
    service: Monitors,
    monitor: Annotated[str | None, Query(max_length=128, pattern=MONITOR_NAME)] = None,
    since: Ms = None,
    limit: Limit = 50,
) -> Response:
    runs = service.list_runs(name, monitor=monitor, since=since, limit=limit)
    return ok({"items": [r.summary() for r in runs], "next_page_token": None})


@router.get("/endpoints/{name}/monitoring/series", summary="Monitoring time series")
def series(
    name: Name,
    service: Monitors,
    metric: Annotated[list[Text64] | None, Query(max_length=20)] = None,
    feature: Annotated[str | None, Query(max_length=256, pattern=PRINTABLE)] = None,
    monitor: Annotated[str | None, Query(max_length=128, pattern=MONITOR_NAME)] = None,
    since: Ms = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    points = service.series(
        name, monitor=monitor, metrics=metric, feature=feature, since=since, limit=limit
    )
    return ok({"items": points, "next_page_token": None})


@router.get("/monitoring/runs/{run_id}", summary="One monitor run with its whole result")
def get_run(
    run_id: Annotated[str, Path(max_length=36, pattern=PRINTABLE)], service: Monitors
) -> Response:
    run = service.get_run(run_id)
    return ok({**run.summary(), "result": run.result})


@router.get(
    "/monitoring/runs/{run_id}/report",
    summary="The report of a run: a self-contained HTML page, or JSON",
    response_class=Response,
)
def get_report(
    run_id: Annotated[str, Path(max_length=36, pattern=PRINTABLE)],
    service: Monitors,
    format: Annotated[str, Query(pattern="^(html|json)$")] = "html",
) -> Response:
    run = service.get_run(run_id)
    body = service.report(run, fmt=format)
    if format == "json":
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/monitoring/events", summary="Monitoring events after a cursor, oldest first")
def events(
    service: Monitors,
    endpoint: Annotated[str | None, Query(max_length=128, pattern=ENDPOINT_NAME)] = None,
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    kind: Annotated[list[Text64] | None, Query(max_length=10)] = None,
    limit: Limit = 100,
) -> Response:
    got = service.events(endpoint=endpoint, after_id=after, kinds=kind, limit=limit)
    return ok({"items": [e.to_dict() for e in got], "next_page_token": None})


@router.get(
    "/monitoring/metrics",
    summary="Monitoring results in the Prometheus text format",
    response_class=Response,
)
def metrics(service: Monitors) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(service.metrics_text(), media_type=CONTENT_TYPE_LATEST)


@router.get("/endpoints/{name}/monitors", summary="Monitors declared on an endpoint")
def list_monitors(name: Name, service: Monitors) -> Response:
    return ok(
        {"items": [m.public_dict() for m in service.list_monitors(name)], "next_page_token": None}
    )


@router.put("/endpoints/{name}/monitors/{monitor}", summary="Declare or replace a monitor")
def declare_monitor(
    name: Name, monitor: MonitorName, body: MonitorBody, service: Monitors
) -> Response:
    mon = service.declare(
        name,
        monitor,
        body.spec,
        enabled=body.enabled,
        expected_version=body.expected_version,
    )
    return ok(mon.public_dict(), 201 if mon.version == 1 else 200)


@router.get("/endpoints/{name}/monitors/{monitor}", summary="One declared monitor")
def get_monitor(name: Name, monitor: MonitorName, service: Monitors) -> Response:
    return ok(service.get_monitor(name, monitor).public_dict())


@router.delete("/endpoints/{name}/monitors/{monitor}", status_code=204, summary="Delete a monitor")
def delete_monitor(name: Name, monitor: MonitorName, service: Monitors) -> Response:
    service.delete_monitor(name, monitor)
    return no_content()


@router.get("/alerts", summary="Webhook deliveries, newest first (dead letters with status=dead)")
def list_alerts(
    service: Alerts,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")] = None,
    endpoint: Annotated[str | None, Query(max_length=128, pattern=ENDPOINT_NAME)] = None,
    limit: Limit = 100,
) -> Response:
    got = service.list_deliveries(status=status, endpoint=endpoint, limit=limit)
    return ok({"items": [d.to_dict() for d in got], "next_page_token": None})


@router.get("/alerts/{delivery_id}", summary="One webhook delivery")
def get_alert(
    delivery_id: Annotated[str, Path(max_length=36, pattern=PRINTABLE)], service: Alerts
) -> Response:
    return ok(service.get_delivery(delivery_id).to_dict())


@router.post("/alerts/{delivery_id}/replay", summary="Send a dead delivery again")
def replay_alert(
    delivery_id: Annotated[str, Path(max_length=36, pattern=PRINTABLE)], service: Alerts
) -> Response:
    return ok(service.replay(delivery_id).to_dict())
