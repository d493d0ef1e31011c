"""Identity routes: users, API tokens, role grants and ``whoami``, under ``/api/v1``.

=======  =================================================  =======================================
method   path                                               does
=======  =================================================  =======================================
GET      /whoami                                            the caller: ``{name, kind, display,
                                                            superuser, admin, roles, grants}``
GET      /users                                             ``{items, next_page_token}`` (admin)
POST     /users                                             ``{name, kind, display, roles}`` -> 201
                                                            user (admin)
GET      /users/{name}                                      user (admin)
POST     /users/{name}/disable                              -> user; its tokens stop working
                                                            (admin)
POST     /users/{name}/enable                               -> user (admin)
GET      /tokens?user=                                      tokens, never secrets: yours; an
                                                            admin's: everyone's, or ``user``'s
POST     /tokens                                            ``{user, name, expires_in_days}`` ->
                                                            201 the token with its secret in
                                                            ``token``, this once (your own, or
                                                            anyone's for an admin)
POST     /tokens/{token_id}/revoke                          -> the revoked token (your own, or
                                                            anyone's for an admin)
GET      /grants?principal=                                 grants (admin; or your own)
POST     /grants                                            ``{principal, role, resource_type,
                                                            resource_id}`` -> 201 grant (admin)
DELETE   /grants?principal=&role=&resource_type=&           -> 204 (admin)
         resource_id=
=======  =================================================  =======================================

Every rule lives in :class:`~dockyard.governance.identity.IdentityService` -- who may do what
(the ``admin`` permission, or "yourself"), name syntax, the last enabled admin, audit events
(``user.create``, ``user.disable``, ``user.enable``, ``token.create``, ``token.revoke``,
``grant.add``, ``grant.remove``, each in the same transaction as the change). These handlers
parse, call it and serialise. A token's secret is in the answer of ``POST /tokens`` only (sent
with ``Cache-Control: no-store``); no answer ever holds a token's hash. Someone else's token id
is a 404 to a non-admin, as an unknown one is: ids cannot be probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from dockyard.server.routes._common import no_content, ok, page, request_actor
from dockyard.server.schemas_identity import PRINTABLE, CreateToken, CreateUser, GrantBody

if TYPE_CHECKING:
    from dockyard.backend import Backend
    from dockyard.governance.identity import IdentityService

router = APIRouter(tags=["identity"])


async def identity_service(request: Request) -> IdentityService:
    """An IdentityService for this request's actor, over the backend opened at start-up."""
    backend: Backend = request.app.state.backend
    return backend.identity(request_actor(request))


#: Annotate a handler parameter with this to receive the request's IdentityService.
Identities = Annotated[Any, Depends(identity_service)]
# Checked again by the service; bounded here so that no odd text reaches a query.
_TEXT = {"max_length": 256, "pattern": PRINTABLE}
Name = Annotated[str | None, Query(**_TEXT)]


# -- the caller --------------------------------------------------------------------------------


@router.get("/whoami", summary="Who the caller is: name, kind, roles and grants")
def whoami(service: Identities) -> Response:
    return ok(service.whoami().to_dict())


# -- users -------------------------------------------------------------------------------------


@router.get("/users", summary="List users and service accounts (admin)")
def list_users(service: Identities) -> Response:
    return page(service.list_users())


@router.post("/users", status_code=201, summary="Create a user or service account (admin)")
def create_user(body: CreateUser, service: Identities) -> Response:
    user = service.create_user(body.name, kind=body.kind, display=body.display, roles=body.roles)
    return ok(user.to_dict(), 201)


@router.get("/users/{name}", summary="Get a user (admin)")
def get_user(name: str, service: Identities) -> Response:
    return ok(service.get_user(name).to_dict())


@router.post("/users/{name}/disable", summary="Disable a user: its tokens stop working (admin)")
def disable_user(name: str, service: Identities) -> Response:
    return ok(service.set_disabled(name, True).to_dict())


@router.post("/users/{name}/enable", summary="Enable a disabled user again (admin)")
def enable_user(name: str, service: Identities) -> Response:
    return ok(service.set_disabled(name, False).to_dict())


# -- tokens ------------------------------------------------------------------------------------


@router.get("/tokens", summary="List API tokens (never their secrets)")
def list_tokens(service: Identities, user: Name = None) -> Response:
    """Your own tokens; for an admin every token, or ``user``'s."""
    return page(service.list_tokens(user))


@router.post("/tokens", status_code=201, summary="Create an API token (its secret shown once)")
def create_token(body: CreateToken, service: Identities) -> Response:
    """The answer holds the secret (``token``) this once: only its sha256 is stored."""
    new = service.create_token(body.user, body.name, expires_in_days=body.expires_in_days)
    response = ok(new.to_dict(), 201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/tokens/{token_id}/revoke", summary="Revoke an API token: it stops working")
def revoke_token(token_id: str, service: Identities) -> Response:
    return ok(service.revoke_token(token_id).to_dict())


# -- grants ------------------------------------------------------------------------------------


@router.get("/grants", summary="List role grants (admin; anyone for their own)")
def list_grants(service: Identities, principal: Name = None) -> Response:
    return page(service.list_grants(principal))


@router.post("/grants", status_code=201, summary="Grant a role (admin)")
def add_grant(body: GrantBody, service: Identities) -> Response:
    grant = service.grant(body.principal, body.role, body.resource_type, body.resource_id)
    return ok(grant.to_dict(), 201)


@router.delete("/grants", status_code=204, summary="Remove a role grant (admin)")
def remove_grant(
    service: Identities,
    principal: Annotated[str, Query(**_TEXT)],
    role: Annotated[str, Query(**_TEXT)],
    resource_type: Annotated[str, Query(**_TEXT)] = "global",
    resource_id: Annotated[str, Query(**_TEXT)] = "*",
) -> Response:
    service.revoke_grant(principal, role, resource_type, resource_id)
    return no_content()
