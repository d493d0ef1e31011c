"""Endpoint management over HTTP: :class:`RestEndpointService`.

Same public methods, signatures and return types as
:class:`dockyard.serving.service.EndpointService` (a test pins them) but for
``apply_canary_step``, which only the canary controller inside the server calls. The SDK and
the CLI (``dockyard deploy``, ``dockyard endpoints ...``) use either one without knowing which:
local mode acts on the metadata store, remote mode asks a Dockyard server (the routes of
:mod:`dockyard.server.routes.endpoints`), which applies the very same service as the caller its
token stands for. Errors come back as the service's exception classes with its messages
(:class:`~dockyard.client.rest.RestTransport`).

Import-light: no store, no data stack (only :mod:`dockyard.core.serving_entities`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.client.rest import RestTransport, _seg
from dockyard.core.serving_entities import (
    Decision,
    Endpoint,
    Gate,
    ModelRef,
    check_endpoint_name,
    check_variant_name,
)

__all__ = ["RestEndpointService"]


def _path(name: Any) -> str:
    # The service's own check (and message): a name never changes the URL's shape.
    return f"/endpoints/{_seg(check_endpoint_name(name))}"


def _jsonable(value: Any) -> Any:
    """Steps, bake and gates as the routes take them (a Gate as its text)."""
    if isinstance(value, Gate):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return [_jsonable(v) for v in value]


class RestEndpointService(RestTransport):
    """:class:`~dockyard.serving.service.EndpointService`, spoken to a Dockyard server.

    Parameters are those of :class:`~dockyard.client.rest.RestTransport`; the token decides
    who acts.
    """

    # -- reads ---------------------------------------------------------------------------------

    def get_endpoint(self, name: str) -> Endpoint:
        return Endpoint.from_dict(self._json("GET", _path(name)))

    def list_endpoints(self) -> list[Endpoint]:
        """The endpoints the caller may read, by name."""
        return [Endpoint.from_dict(d) for d in self._json("GET", "/endpoints")["items"]]

    def policy_history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """Past policy versions, newest first: version, created, by, reason, policy."""
        d = self._json("GET", f"{_path(name)}/history", params={"limit": limit})
        return list(d["items"])

    def list_decisions(self, name: str, limit: int = 50) -> list[Decision]:
        """Decisions on the endpoint, newest first, each with its evidence."""
        d = self._json("GET", f"{_path(name)}/decisions", params={"limit": limit})
        return [Decision.from_dict(x) for x in d["items"]]

    # -- changes -------------------------------------------------------------------------------

    def deploy(
        self,
        name: str,
        model: str | ModelRef,
        *,
        mode: str = "replace",
        weight: int | None = None,
        variant: str | None = None,
        steps: Sequence[int] | str | None = None,
        bake: float | str | None = None,
        min_requests: int | None = None,
        gates: Sequence[str | Gate] | None = None,
        description: str = "",
        reason: str | None = None,
        key_field: str | None = None,
    ) -> Endpoint:
        """Put a model version on endpoint ``name``; see
        :meth:`dockyard.serving.service.EndpointService.deploy`."""
        body = {
            "model": str(model) if isinstance(model, ModelRef) else model,
            "mode": mode,
            "weight": weight,
            "variant": variant,
            "steps": _jsonable(steps),
            "bake": bake,
            "min_requests": min_requests,
            "gates": _jsonable(gates),
            "description": description,
            "reason": reason,
            "key_field": key_field,
        }
        return Endpoint.from_dict(self._json("POST", f"{_path(name)}/deploy", body=body))

    def set_weights(
        self, name: str, weights: Mapping[str, int], reason: str | None = None
    ) -> Endpoint:
        """Set the live variants' weights (every live variant named, summing to 100)."""
        body = {"weights": _jsonable(weights), "reason": reason}
        return Endpoint.from_dict(self._json("PUT", f"{_path(name)}/weights", body=body))

    def remove_variant(self, name: str, variant: str, reason: str | None = None) -> Endpoint:
        """Take a shadow, or a live variant other than the primary, off the endpoint."""
        path = f"{_path(name)}/variants/{_seg(check_variant_name(variant))}"
        return Endpoint.from_dict(self._json("DELETE", path, params={"reason": reason}))

    def promote(self, name: str, variant: str | None = None, reason: str | None = None) -> Endpoint:
        """Make a live variant (default: the running canary, or the only other live variant)
        the primary at 100 %."""
        body = {"variant": variant, "reason": reason}
        return Endpoint.from_dict(self._json("POST", f"{_path(name)}/promote", body=body))

    def rollback(self, name: str, reason: str | None = None) -> Endpoint:
        """Restore the last good policy (the one before the current change) as a new version."""
        body = {"reason": reason}
        return Endpoint.from_dict(self._json("POST", f"{_path(name)}/rollback", body=body))

    def delete_endpoint(self, name: str, reason: str | None = None) -> None:
        """Remove the endpoint and its policy history (the audit log keeps the record)."""
        self._json("DELETE", _path(name), params={"reason": reason})
