"""Run routes, under ``/api/v1/runs``.

=======  ================================================  ========================================
method   path                                              does
=======  ================================================  ========================================
POST     /runs                                             start ``{experiment_id, name, tags,
                                                           parent_run_id, start_time}`` -> 201 run
POST     /runs/search                                      ``{experiment_ids, filter, order_by,
                                                           stage, max_results, page_token}`` ->
                                                           ``{items, next_page_token}``
GET      /runs/{run_id}                                    one run (params, latest metrics, tags,
                                                           inputs)
PATCH    /runs/{run_id}                                    rename ``{name}`` -> run
POST     /runs/{run_id}/end                                ``{status, end_time}`` (both optional)
                                                           -> run
POST     /runs/{run_id}/delete                             soft delete -> run
POST     /runs/{run_id}/restore                            restore -> run
POST     /runs/{run_id}/batch                              ``{metrics: [{key, value, step,
                                                           timestamp}], params, tags}`` -> 204
POST     /runs/{run_id}/inputs                             ``{inputs: [{name, digest, context,
                                                           num_rows, schema, source}]}`` -> 204
DELETE   /runs/{run_id}/tags/{key}                         delete one tag -> 204
GET      /runs/{run_id}/metrics/{key}/history              ``?max_results=&page_token=`` ->
                                                           ``{items, next_page_token}``
=======  ================================================  ========================================

Metric values that are not finite travel as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, in both directions. Keys may contain ``/`` (``{key}`` spans segments).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from starlette.responses import Response

from dockyard.core.entities import Metric
from dockyard.server.routes._common import Tracking, no_content, ok, page_of
from dockyard.server.schemas import EndRun, LogBatch, LogInputs, RenameRun, SearchRuns, StartRun

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=201, summary="Start a run")
def start_run(body: StartRun, service: Tracking) -> Response:
    run = service.start_run(
        experiment_id=None if body.experiment_id is None else str(body.experiment_id),
        name=body.name,
        tags=body.tags,
        parent_run_id=body.parent_run_id,
        start_time=body.start_time,
    )
    return ok(run.to_dict(), 201)


@router.post("/search", summary="Search runs")
def search_runs(body: SearchRuns, service: Tracking) -> Response:
    found = service.search_runs(
        experiment_ids=[str(e) for e in body.experiment_ids],
        filter=body.filter,
        order_by=body.order_by,
        stage=body.stage,
        max_results=body.max_results,
        page_token=body.page_token,
    )
    return page_of(found)


@router.get("/{run_id}", summary="Get a run")
def get_run(run_id: str, service: Tracking) -> Response:
    return ok(service.get_run(run_id).to_dict())


@router.patch("/{run_id}", summary="Rename a run")
def rename_run(run_id: str, body: RenameRun, service: Tracking) -> Response:
    return ok(service.rename_run(run_id, body.name).to_dict())


@router.post("/{run_id}/end", summary="End a run")
def end_run(run_id: str, service: Tracking, body: EndRun | None = None) -> Response:
    body = body or EndRun()
    return ok(service.end_run(run_id, body.status, body.end_time).to_dict())


@router.post("/{run_id}/delete", summary="Delete a run (soft)")
def delete_run(run_id: str, service: Tracking) -> Response:
    return ok(service.delete_run(run_id).to_dict())


@router.post("/{run_id}/restore", summary="Restore a deleted run")
def restore_run(run_id: str, service: Tracking) -> Response:
    return ok(service.restore_run(run_id).to_dict())


@router.post("/{run_id}/batch", status_code=204, summary="Log metrics, params and tags")
def log_batch(run_id: str, body: LogBatch, service: Tracking) -> Response:
    # Complete points go as Metric tuples (the service's fast path); a point without a step or
    # timestamp goes as a mapping so the service fills in its defaults.
    metrics: list[Any] = [
        Metric(m.key, m.value, m.timestamp, m.step)
        if m.timestamp is not None and m.step is not None
        else m.model_dump()
        for m in body.metrics
    ]
    if body.metric_columns is not None:
        c = body.metric_columns
        metrics.extend(map(Metric._make, zip(c.keys, c.values, c.timestamps, c.steps, strict=True)))
    service.log_batch(run_id, metrics=metrics, params=body.params, tags=body.tags)
    return no_content()


@router.post("/{run_id}/inputs", status_code=204, summary="Log dataset inputs")
def log_inputs(run_id: str, body: LogInputs, service: Tracking) -> Response:
    service.log_inputs(run_id, [d.as_mapping() for d in body.inputs])
    return no_content()


@router.delete("/{run_id}/tags/{key:path}", status_code=204, summary="Delete a run tag")
def delete_tag(run_id: str, key: str, service: Tracking) -> Response:
    service.delete_tag(run_id, key)
    return no_content()


@router.get("/{run_id}/metrics/{key:path}/history", summary="A metric's history")
def get_metric_history(
    run_id: str,
    key: str,
    service: Tracking,
    max_results: int | None = None,
    page_token: str | None = None,
    layout: Literal["records", "columns"] = "records",
) -> Response:
    """``layout=columns`` answers ``{key, steps, timestamps, values, next_page_token}``: the
    compact form the SDK reads (a 5,000-point history is a third of the bytes and parses in a
    fraction of the time)."""
    history = service.get_metric_history(run_id, key, max_results, page_token)
    if layout == "records":
        return page_of(history)
    items = history.items
    return ok(
        {
            "key": key,
            "steps": [m.step for m in items],
            "timestamps": [m.timestamp for m in items],
            "values": [m.value for m in items],
            "next_page_token": history.next_page_token,
        }
    )
