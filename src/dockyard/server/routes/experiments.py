"""Experiment routes, under ``/api/v1/experiments``.

=======  ==============================================  ==========================================
method   path                                            does
=======  ==============================================  ==========================================
POST     /experiments                                    create ``{name, tags}`` -> 201 experiment
GET      /experiments?stage=&max_results=&page_token=    list -> ``{items, next_page_token}``
POST     /experiments/get-or-create                      ``{name}`` -> experiment, made if absent
GET      /experiments/by-name/{name}                     one experiment by its name
GET      /experiments/resolve/{ref}                      by id (all digits) or else by name
GET      /experiments/{experiment_id}                    one experiment
PATCH    /experiments/{experiment_id}                    rename ``{name}`` -> experiment
POST     /experiments/{experiment_id}/delete             soft delete -> experiment
POST     /experiments/{experiment_id}/restore            restore -> experiment
POST     /experiments/{experiment_id}/tags               set one tag ``{key, value}`` -> 204
=======  ==============================================  ==========================================

Names may contain ``/``; URL-encode anything else that is not a plain path character.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from dockyard.server.routes._common import Tracking, no_content, ok, page_of
from dockyard.server.schemas import CreateExperiment, ExperimentName, ExperimentTag

router = APIRouter(prefix="/experiments", tags=["experiments"])


@router.post("", status_code=201, summary="Create an experiment")
def create_experiment(body: CreateExperiment, service: Tracking) -> Response:
    return ok(service.create_experiment(body.name, body.tags).to_dict(), 201)


@router.get("", summary="List experiments")
def list_experiments(
    service: Tracking,
    stage: str = "active",
    max_results: int | None = None,
    page_token: str | None = None,
) -> Response:
    return page_of(service.list_experiments(stage, max_results, page_token))


@router.post("/get-or-create", summary="Get an experiment by name, creating it if absent")
def get_or_create_experiment(body: ExperimentName, service: Tracking) -> Response:
    return ok(service.get_or_create_experiment(body.name).to_dict())


@router.get("/by-name/{name:path}", summary="Get an experiment by name")
def get_experiment_by_name(name: str, service: Tracking) -> Response:
    return ok(service.get_experiment_by_name(name).to_dict())


@router.get("/resolve/{ref:path}", summary="Get an experiment by id or name")
def resolve_experiment(ref: str, service: Tracking) -> Response:
    return ok(service.resolve_experiment(ref).to_dict())


@router.get("/{experiment_id}", summary="Get an experiment")
def get_experiment(experiment_id: str, service: Tracking) -> Response:
    return ok(service.get_experiment(experiment_id).to_dict())


@router.patch("/{experiment_id}", summary="Rename an experiment")
def rename_experiment(experiment_id: str, body: ExperimentName, service: Tracking) -> Response:
    return ok(service.rename_experiment(experiment_id, body.name).to_dict())


@router.post("/{experiment_id}/delete", summary="Delete an experiment (soft)")
def delete_experiment(experiment_id: str, service: Tracking) -> Response:
    return ok(service.delete_experiment(experiment_id).to_dict())


@router.post("/{experiment_id}/restore", summary="Restore a deleted experiment")
def restore_experiment(experiment_id: str, service: Tracking) -> Response:
    return ok(service.restore_experiment(experiment_id).to_dict())


@router.post("/{experiment_id}/tags", status_code=204, summary="Set an experiment tag")
def set_experiment_tag(experiment_id: str, body: ExperimentTag, service: Tracking) -> Response:
    service.set_experiment_tag(experiment_id, body.key, body.value)
    return no_content()
