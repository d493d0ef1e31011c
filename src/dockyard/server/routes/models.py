"""Model registry routes, under ``/api/v1/models`` (and ``/api/v1/blobs``).

``{v}`` is ``/models/{name}/versions/{version}``.

=======  ===========================================  ============================================
method   path                                         does
=======  ===========================================  ============================================
POST     /models                                      ``{name, description, tags}`` -> 201 model
GET      /models?max_results=&page_token=             ``{items, next_page_token}``
GET      /models/resolve?uri=                         ``models:/fraud/3``, ``fraud@champion``,
                                                      ``models:/fraud/production``... -> version
GET      /models/{name}                               registered model (tags, aliases, latest)
PATCH    /models/{name}                               ``{description}`` -> registered model
PUT      /models/{name}/tags/{key}                    ``{value}`` -> 204
POST     /models/{name}/versions                      ``{source}`` (``runs:/<run_id>/<path>`` or
                                                      ``models:/<name>/<v>``) or ``{files}`` (an
                                                      uploaded package), ``description, tags``
                                                      -> 201 model version
GET      /models/{name}/versions?status=&max_results  ``{items, next_page_token}`` (``status``
         =&page_token=                                repeatable)
GET      {v}                                          model version
PATCH    {v}                                          ``{description}`` -> model version
PUT      {v}/tags/{key}                               ``{value}`` -> 204
POST     {v}/transition                               ``{to, reason, override_gate}`` -> version
POST     {v}/retire                                   ``{reason, replacement_version}`` -> version
POST     {v}/validate                                 ``{data: {columns | records, dtypes}, label,
                                                      against, requirements}`` -> 201 verdict
GET      {v}/validations                              stored verdicts ``{items, ...}``
POST     {v}/approvals                                ``{action: request|approve|reject, comment}``
                                                      -> 201 the approval step
GET      {v}/approvals                                steps, oldest first ``{items, ...}``
GET      {v}/production-approval                      ``{approval}``: the approval that counts
                                                      (null when the policy is off); 409 saying
                                                      what is missing
PUT      /models/{name}/approval-policy               ``{require_approval}`` -> registered model
GET      {v}/lineage                                  ``{root, nodes, edges}``
GET      {v}/status-history                           ``{items, next_page_token}``
GET      {v}/files                                    ``{items: [{path, sha256, size}]}``
GET      {v}/files/{path}                             one package file's bytes, streamed, with
                                                      ``X-Dockyard-Digest``
PUT      /models/{name}/aliases/{alias}               ``{version}`` -> the aliased version
DELETE   /models/{name}/aliases/{alias}               -> 204
GET      /models/{name}/aliases/history?alias=        alias moves ``{items, next_page_token}``
POST     /blobs                                       one file (raw body, streamed; limit
                                                      ``max_artifact_bytes``) -> 201
                                                      ``{sha256, size}``
=======  ===========================================  ============================================

Every rule lives in :class:`~dockyard.registry.service.RegistryService`; these handlers parse,
call it and serialise. In particular the service refuses any ``source`` that is not a package
Dockyard stored itself (``file:``, ``http(s):``, paths, ``..``: 422), an illegal status
transition (409 naming the allowed targets in ``details.allowed``), and a tampered package.

Holdout data for ``validate`` comes inline in the request (bounded by ``max_body_bytes``) and
becomes a pandas DataFrame inside the handler: the server never opens a path a client names.
pandas is imported there, on first use, so the server still starts without it. The server
refuses ``trust_pickle: true`` (403): it never unpickles because a request asks it to.

``GET /models/resolve`` shares its path with a model that is called ``resolve``: without the
``uri`` parameter it answers that model, as ``GET /models/{name}`` would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dockyard.core.errors import PermissionDenied
from dockyard.core.paging import MAX_PAGE_SIZE
from dockyard.governance.permissions import MODEL_WRITE
from dockyard.server.routes._common import (
    no_content,
    ok,
    page,
    page_of,
    receive_upload,
    request_actor,
    streamed_download,
)
from dockyard.server.schemas_registry import (
    ApprovalStep,
    CreateModelVersion,
    CreateRegisteredModel,
    RetireVersion,
    SetAlias,
    SetApprovalPolicy,
    SetModelTag,
    TransitionVersion,
    UpdateRegisteredModel,
    ValidateVersion,
)

if TYPE_CHECKING:
    from dockyard.backend import Backend

router = APIRouter(tags=["models"])


async def registry_service(request: Request) -> Any:
    """A RegistryService for this request's actor, over the backend opened at start-up."""
    backend: Backend = request.app.state.backend
    return backend.registry(request_actor(request), server=True)


#: Annotate a handler parameter with this to receive the request's RegistryService.
Registry = Annotated[Any, Depends(registry_service)]
#: ``{version}`` in a path: a positive integer that fits the store's integer columns.
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="Version number (1, 2, ...)")]
MaxResults = Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)]
# Compared verbatim; bounded so that a typo never becomes a database error.
_TEXT = {"max_length": 1024, "pattern": r"^[^\x00-\x1f\x7f]*$"}


def _d(obj: Any) -> Any:
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


# -- registered models ---------------------------------------------------------------------------


@router.post("/models", status_code=201, summary="Create a registered model")
def create_registered_model(body: CreateRegisteredModel, service: Registry) -> Response:
    model = service.create_registered_model(body.name, body.description, tags=body.tags)
    return ok(_d(model), 201)


@router.get("/models", summary="List registered models")
def list_registered_models(
    service: Registry, max_results: MaxResults = None, page_token: str | None = None
) -> Response:
    return page_of(service.list_registered_models(max_results=max_results, page_token=page_token))


@router.get("/models/resolve", summary="Resolve a model URI to its version")
def resolve_model_uri(
    service: Registry, uri: Annotated[str | None, Query(**_TEXT)] = None
) -> Response:
    if uri is None:  # the model called "resolve", asked for with GET /models/{name}
        return ok(_d(service.get_registered_model("resolve")))
    return ok(_d(service.resolve(uri)))


@router.get("/models/{name}", summary="Get a registered model")
def get_registered_model(name: str, service: Registry) -> Response:
    return ok(_d(service.get_registered_model(name)))


@router.patch("/models/{name}", summary="Update a registered model's description")
def update_registered_model(name: str, body: UpdateRegisteredModel, service: Registry) -> Response:
    return ok(_d(service.update_registered_model(name, description=body.description)))


@router.put("/models/{name}/tags/{key:path}", status_code=204, summary="Set a registered model tag")
def set_registered_model_tag(name: str, key: str, body: SetModelTag, service: Registry) -> Response:
    service.set_registered_model_tag(name, key, body.value)
    return no_content()


# -- aliases -------------------------------------------------------------------------------------


@router.get("/models/{name}/aliases/history", summary="History of alias moves")
def alias_history(
    name: str, service: Registry, alias: Annotated[str | None, Query(**_TEXT)] = None
) -> Response:
    return page(service.alias_history(name, alias))


@router.put("/models/{name}/aliases/{alias}", summary="Point an alias at a version")
def set_alias(name: str, alias: str, body: SetAlias, service: Registry) -> Response:
    return ok(_d(service.set_alias(name, alias, body.version)))


@router.delete("/models/{name}/aliases/{alias}", status_code=204, summary="Delete an alias")
def delete_alias(name: str, alias: str, service: Registry) -> Response:
    service.delete_alias(name, alias)
    return no_content()


# -- versions ------------------------------------------------------------------------------------


@router.post("/models/{name}/versions", status_code=201, summary="Register a model version")
def create_model_version(name: str, body: CreateModelVersion, service: Registry) -> Response:
    if body.files is not None:
        files = {path: (f.sha256, f.size) for path, f in body.files.items()}
        version = service.create_model_version_from_files(
            name, files, description=body.description, tags=body.tags
        )
    else:
        assert body.source is not None  # the schema demands exactly one of the two
        version = service.create_model_version(
            name, body.source, description=body.description, tags=body.tags
        )
    return ok(_d(version), 201)


@router.get("/models/{name}/versions", summary="List a model's versions")
def list_model_versions(
    name: str,
    service: Registry,
    status: Annotated[list[str] | None, Query(description="repeat for several")] = None,
    max_results: MaxResults = None,
    page_token: str | None = None,
) -> Response:
    wanted: str | list[str] | None = status
    if status is not None and len(status) == 1:
        wanted = status[0]
    found = service.list_model_versions(
        name, status=wanted, max_results=max_results, page_token=page_token
    )
    return page_of(found)


@router.get("/models/{name}/versions/{version}", summary="Get a model version")
def get_model_version(name: str, version: Version, service: Registry) -> Response:
    return ok(_d(service.get_model_version(name, version)))


@router.patch("/models/{name}/versions/{version}", summary="Update a version's description")
def update_model_version(
    name: str, version: Version, body: UpdateRegisteredModel, service: Registry
) -> Response:
    return ok(_d(service.update_model_version(name, version, description=body.description)))


@router.put(
    "/models/{name}/versions/{version}/tags/{key:path}",
    status_code=204,
    summary="Set a model version tag",
)
def set_model_version_tag(
    name: str, version: Version, key: str, body: SetModelTag, service: Registry
) -> Response:
    service.set_model_version_tag(name, version, key, body.value)
    return no_content()


@router.post("/models/{name}/versions/{version}/transition", summary="Change a version's status")
def transition(name: str, version: Version, body: TransitionVersion, service: Registry) -> Response:
    moved = service.transition(
        name, version, body.to, reason=body.reason, override_gate=body.override_gate
    )
    return ok(_d(moved))


@router.post("/models/{name}/versions/{version}/retire", summary="Retire a version")
def retire(name: str, version: Version, body: RetireVersion, service: Registry) -> Response:
    retired = service.retire(
        name, version, reason=body.reason, replacement_version=body.replacement_version
    )
    return ok(_d(retired))


@router.post(
    "/models/{name}/versions/{version}/validate",
    status_code=201,
    summary="Run the validation gate on inline holdout data",
)
def validate(name: str, version: Version, body: ValidateVersion, service: Registry) -> Response:
    if body.trust_pickle:
        raise PermissionDenied(
            "the server never unpickles a package because a request asks it to "
            "(trust_pickle=true): pickle runs arbitrary code. Validate a pickle-based package "
            "in local mode, or save the model in a secure format (skops, native, onnx)"
        )
    data = body.data.to_frame()
    result = service.validate(
        name,
        version,
        data,
        label=body.label,
        against=body.against,
        requirements=list(body.requirements),
    )
    return ok(_d(result), 201)


@router.get("/models/{name}/versions/{version}/validations", summary="A version's stored verdicts")
def validations(name: str, version: Version, service: Registry) -> Response:
    return page(service.validations(name, version))


@router.put("/models/{name}/approval-policy", summary="Turn the model's approval policy on or off")
def set_approval_policy(name: str, body: SetApprovalPolicy, service: Registry) -> Response:
    return ok(_d(service.set_approval_policy(name, body.require_approval)))


@router.post(
    "/models/{name}/versions/{version}/approvals",
    status_code=201,
    summary="Request, approve or reject a version for production",
)
def approval_step(name: str, version: Version, body: ApprovalStep, service: Registry) -> Response:
    if body.action == "request":
        step = service.request_approval(name, version, body.comment)
    elif body.action == "approve":
        step = service.approve(name, version, body.comment)
    else:
        step = service.reject(name, version, body.comment)
    return ok(_d(step), 201)


@router.get("/models/{name}/versions/{version}/approvals", summary="A version's approval steps")
def approvals(name: str, version: Version, service: Registry) -> Response:
    return page(service.approvals(name, version))


@router.get(
    "/models/{name}/versions/{version}/production-approval",
    summary="The approval that lets a version serve in production (409 if missing)",
)
def production_approval(name: str, version: Version, service: Registry) -> Response:
    return ok({"approval": _d(service.check_production_approval(name, version))})


@router.get("/models/{name}/versions/{version}/lineage", summary="A version's lineage graph")
def lineage(name: str, version: Version, service: Registry) -> Response:
    return ok(service.lineage(name, version))


@router.get(
    "/models/{name}/versions/{version}/status-history", summary="A version's status changes"
)
def status_history(name: str, version: Version, service: Registry) -> Response:
    return page(service.status_history(name, version))


def _package_files(service: Any, name: str, version: int) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = service.get_model_version(name, version).files
    return files


@router.get("/models/{name}/versions/{version}/files", summary="A version's package files")
def list_files(name: str, version: Version, service: Registry) -> Response:
    files = _package_files(service, name, version)
    items = [
        {"path": p, "sha256": f["sha256"], "size": f["size"]} for p, f in sorted(files.items())
    ]
    return ok({"items": items, "next_page_token": None})


@router.get(
    "/models/{name}/versions/{version}/files/{path:path}",
    summary="Download one file of a version's package",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_file(name: str, version: Version, path: str, service: Registry) -> Response:
    entry, chunks = service.open_package_file(name, version, path)
    # Size and digest from our own records, not the request.
    return streamed_download(chunks, int(entry["size"]), str(entry["sha256"]))


# -- blobs ---------------------------------------------------------------------------------------


@router.post(
    "/blobs",
    status_code=201,
    summary="Upload one file (raw body, streamed); answers its sha256 and size",
    tags=["blobs"],
)
async def upload_blob(request: Request) -> Response:
    """For registering a local package: upload each file, then ``POST /models/{name}/versions``
    with ``{files}``. A blob nothing refers to is never listed and costs only its bytes."""
    backend: Backend = request.app.state.backend
    # A blob names no model yet: model:write on at least one model, from the service's
    # authorizer (registering the version checks model:write on its model).
    backend.registry(request_actor(request), server=True).authz.require_somewhere(MODEL_WRITE)
    info = await receive_upload(
        request,
        "blob",
        lambda chunks, limit: backend.artifacts.put_stream(chunks, max_bytes=limit),
    )
    return ok({"sha256": info.digest, "size": info.size}, 201)
