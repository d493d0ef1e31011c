"""Endpoint management routes: deploy, A/B, shadow, canary, promote, roll back, under ``/api/v1``.

=======  =================================================  =======================================
method   path                                               does
=======  =================================================  =======================================
GET      /endpoints                                         ``{items, next_page_token}``: the
                                                            endpoints the caller may read
POST     /endpoints/{name}/deploy                           ``{model, mode, weight, variant,
                                                            steps, bake, min_requests, gates,
                                                            description, reason, key_field}`` ->
                                                            the endpoint (201 when this deploy
                                                            created it)
GET      /endpoints/{name}                                  the endpoint and its current policy
GET      /endpoints/{name}/history?limit=                   past policy versions, newest first
GET      /endpoints/{name}/decisions?limit=                 decisions with their evidence, newest
                                                            first
PUT      /endpoints/{name}/weights                          ``{weights, reason}`` -> the endpoint
DELETE   /endpoints/{name}/variants/{variant}?reason=       -> the endpoint without that live
                                                            variant or shadow
POST     /endpoints/{name}/promote                          ``{variant, reason}`` (both optional)
                                                            -> the endpoint
POST     /endpoints/{name}/rollback                         ``{reason}`` (optional) -> the
                                                            endpoint on its last good policy
DELETE   /endpoints/{name}?reason=                          -> 204
=======  =================================================  =======================================

Every rule lives in :class:`~dockyard.serving.service.EndpointService` -- permissions
(``endpoint:deploy`` to change, ``endpoint:read`` to look, ``model:read`` to name a version),
which versions may take live traffic (approved, with the four-eyes approval when the model's
policy asks for it), compare-and-set on policy versions, the registry following, decisions and
audit events in the same transaction. These handlers parse, call it and serialise.

The canary controller's ``apply_canary_step`` has no route on purpose: the controller runs
inside the server and calls the service directly; people act through ``promote`` and
``rollback``. Prediction traffic (``/endpoints/{name}/predict``) is served by the inference
app (``dockyard.server.serve_app``), at the root of its own port, never under ``/api/v1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from dockyard.server.routes._common import no_content, ok, page, request_actor
from dockyard.server.schemas_endpoints import (
    ENDPOINT_NAME,
    NO_NUL,
    VARIANT_NAME,
    DeployBody,
    PromoteBody,
    ReasonBody,
    WeightsBody,
)

if TYPE_CHECKING:
    from dockyard.backend import Backend

router = APIRouter(tags=["endpoints"])


async def endpoint_service(request: Request) -> Any:
    """An EndpointService for this request's actor, over the backend opened at start-up."""
    backend: Backend = request.app.state.backend
    return backend.endpoints(request_actor(request))


#: Annotate a handler parameter with this to receive the request's EndpointService.
Endpoints = Annotated[Any, Depends(endpoint_service)]
Name = Annotated[
    str, Path(max_length=128, pattern=ENDPOINT_NAME, description="The endpoint's name.")
]
VariantName = Annotated[
    str, Path(max_length=64, pattern=VARIANT_NAME, description="A variant of the endpoint.")
]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]
Reason = Annotated[str | None, Query(max_length=2000, pattern=NO_NUL, description="Why.")]
_CREATED = {201: {"description": "The endpoint was created by this deploy."}}


@router.get("/endpoints", summary="List the endpoints the caller may read")
def list_endpoints(service: Endpoints) -> Response:
    return page(service.list_endpoints())


@router.post(
    "/endpoints/{name}/deploy",
    summary="Deploy a model version: replace, A/B variant, shadow or canary",
    responses=_CREATED,
)
def deploy(name: Name, body: DeployBody, service: Endpoints) -> Response:
    ep = service.deploy(
        name,
        body.model,
        mode=body.mode,
        weight=body.weight,
        variant=body.variant,
        steps=body.steps,
        bake=body.bake,
        min_requests=body.min_requests,
        gates=body.gates,
        description=body.description,
        reason=body.reason,
        key_field=body.key_field,
    )
    # A new endpoint's first policy is version 1; any later deploy makes a higher one.
    return ok(ep.to_dict(), 201 if ep.version == 1 else 200)


@router.get("/endpoints/{name}", summary="Get an endpoint and its traffic policy")
def get_endpoint(name: Name, service: Endpoints) -> Response:
    return ok(service.get_endpoint(name).to_dict())


@router.get("/endpoints/{name}/history", summary="An endpoint's past policy versions")
def policy_history(name: Name, service: Endpoints, limit: Limit = 50) -> Response:
    return ok({"items": service.policy_history(name, limit), "next_page_token": None})


@router.get("/endpoints/{name}/decisions", summary="Decisions on an endpoint, with evidence")
def list_decisions(name: Name, service: Endpoints, limit: Limit = 50) -> Response:
    return page(service.list_decisions(name, limit))


@router.put("/endpoints/{name}/weights", summary="Set the live variants' weights")
def set_weights(name: Name, body: WeightsBody, service: Endpoints) -> Response:
    return ok(service.set_weights(name, body.weights, body.reason).to_dict())


@router.delete(
    "/endpoints/{name}/variants/{variant}", summary="Take a variant or shadow off an endpoint"
)
def remove_variant(
    name: Name, variant: VariantName, service: Endpoints, reason: Reason = None
) -> Response:
    return ok(service.remove_variant(name, variant, reason).to_dict())


@router.post("/endpoints/{name}/promote", summary="Make a live variant the primary at 100 %")
def promote(name: Name, service: Endpoints, body: PromoteBody | None = None) -> Response:
    body = body or PromoteBody()
    return ok(service.promote(name, body.variant, body.reason).to_dict())


@router.post("/endpoints/{name}/rollback", summary="Restore the endpoint's last good policy")
def rollback(name: Name, service: Endpoints, body: ReasonBody | None = None) -> Response:
    return ok(service.rollback(name, (body or ReasonBody()).reason).to_dict())


@router.delete("/endpoints/{name}", status_code=204, summary="Delete an endpoint")
def delete_endpoint(name: Name, service: Endpoints, reason: Reason = None) -> Response:
    service.delete_endpoint(name, reason)
    return no_content()
