"""Request bodies of the endpoint routes (:mod:`dockyard.server.routes.endpoints`).

Like :mod:`dockyard.server.schemas` these describe the *shape* of a request: which fields,
which JSON types, with bounds so that no odd text or number reaches the store. The rules about
values -- endpoint and variant names, which versions may take live traffic, canary steps,
gates, durations, weights summing to 100 -- are the endpoint service's
(:class:`~dockyard.serving.service.EndpointService`), checked for every caller alike. Unknown
fields are refused and JSON types are strict (``"50"`` is not a weight).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from dockyard.server.schemas import _Body

__all__ = ["DeployBody", "PromoteBody", "ReasonBody", "WeightsBody"]

#: Printable text: no control characters (PostgreSQL refuses NUL in text columns).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
#: Free text that may span lines (a description): anything but NUL.
NO_NUL = r"^[^\x00]*$"
#: Endpoint and variant names as they appear in a path: the service's syntax, checked again
#: there (with its message); bounded here so that the spec says what a name looks like.
ENDPOINT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VARIANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_MAX_TEXT = 2000

Reason = Annotated[str, StringConstraints(max_length=_MAX_TEXT, pattern=NO_NUL)]
Variant = Annotated[str, StringConstraints(max_length=64, pattern=PRINTABLE)]
GateText = Annotated[str, StringConstraints(max_length=200, pattern=PRINTABLE)]
Percent = Annotated[int, Field(ge=0, le=100)]


class DeployBody(_Body):
    """Put a model version on the endpoint; see ``EndpointService.deploy``."""

    model: str = Field(
        max_length=1024,
        pattern=PRINTABLE,
        description="fraud/5, fraud@champion, fraud/production or models:/fraud/5",
    )
    mode: Literal["replace", "ab", "shadow", "canary"] = Field(
        "replace",
        description="replace: 100 % of live traffic (creates the endpoint); ab: a new variant "
        "with `weight` percent; shadow: a copy of every request, never answering; canary: a new "
        "variant moved through `steps` while every gate holds",
    )
    weight: int | None = Field(
        None, ge=0, le=100, description="Percent of live traffic for an A/B variant (mode ab)."
    )
    variant: Variant | None = Field(
        None, description="The variant's name (default: <model>-<version>)."
    )
    steps: list[Percent] | Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description='Canary steps in percent: [5, 25, 50, 100] or "5,25,50,100".'
    )
    bake: float | Annotated[str, StringConstraints(max_length=32)] | None = Field(
        None, description='Bake time per canary step: seconds, or "90s", "10m", "2h", "1d".'
    )
    min_requests: int | None = Field(
        None, ge=0, le=10_000_000, description="Requests a canary step needs before it moves."
    )
    gates: list[GateText] | None = Field(
        None,
        max_length=32,
        description='Canary gates, e.g. ["error_rate<0.01", "p99_ms<=primary*1.2"].',
    )
    description: Reason = Field("", description="The endpoint's description (on creation).")
    reason: Reason | None = Field(None, description="Why: kept with the policy version.")
    key_field: Annotated[str, StringConstraints(max_length=128, pattern=PRINTABLE)] | None = Field(
        None, description="JSON field of a request whose value keeps a caller sticky."
    )


class WeightsBody(_Body):
    weights: dict[Variant, Percent] = Field(
        max_length=64,
        description="Every live variant's weight in percent, summing to 100.",
    )
    reason: Reason | None = None


class PromoteBody(_Body):
    variant: Variant | None = Field(
        None,
        description="The live variant to promote (default: the running canary, or the only "
        "other live variant).",
    )
    reason: Reason | None = None


class ReasonBody(_Body):
    reason: Reason | None = None
