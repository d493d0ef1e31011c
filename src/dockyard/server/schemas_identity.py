"""Request bodies of the identity routes (:mod:`dockyard.server.routes.identity`).

Like :mod:`dockyard.server.schemas` these describe only the *shape* of a request; the rules
about values -- user names, roles, resource types, who may do what -- are the identity
service's (:class:`~dockyard.governance.identity.IdentityService`), checked for every caller
alike. Unknown fields are refused and JSON types are strict.

The one value rule kept here too: free text that ends up in the metadata store (a grant's
resource id) may not hold control characters, so a stray NUL is a 422 rather than a database
error on PostgreSQL.
"""

from __future__ import annotations

from pydantic import Field

from dockyard.server.schemas import _Body

__all__ = ["CreateToken", "CreateUser", "GrantBody"]

#: Printable text: no control characters (PostgreSQL refuses NUL in text columns).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class CreateUser(_Body):
    name: str = Field(description="1 to 128 letters, digits or . _ @ + -")
    kind: str = Field("user", description="user or service_account")
    display: str = Field("", description="Display name.")
    roles: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Global roles: viewer, editor, deployer, approver, admin. The first user "
        "of a store must get admin.",
    )


class CreateToken(_Body):
    """A new API token for ``user``: yourself, or anyone for an admin."""

    user: str = Field(description="Whose token: your own name, or any user's for an admin.")
    name: str = Field("", description="What the token is for ('laptop', 'ci').")
    expires_in_days: float | None = Field(
        90, gt=0, le=3650, description="Days until it expires; null: it never expires."
    )


class GrantBody(_Body):
    principal: str = Field(description="The user or service account.")
    role: str = Field(description="viewer, editor, deployer, approver or admin.")
    resource_type: str = Field(
        "global", description="global, experiment, registered_model or endpoint."
    )
    resource_id: str = Field(
        "*",
        max_length=256,
        pattern=PRINTABLE,
        description="Experiment id, model or endpoint name; '*' for all of them (and for global).",
    )
