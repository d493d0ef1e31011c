"""The SDK's client: the same tracking, registry and identity API in local and remote mode.

``Client()`` talks straight to the store when no tracking URI is set (local mode, the actor is
the OS user) and to a Dockyard server over HTTP when ``DOCKYARD_TRACKING_URI`` (or
``tracking_uri=``) names one. Both sides expose exactly the methods of
:class:`dockyard.tracking.TrackingService` and of
:class:`dockyard.registry.service.RegistryService` (``client.get_run(...)``,
``client.set_alias(...)``; the two services share no method name, a test checks it), return
the same objects and raise the same error classes, so code moves between a laptop and a team
server unchanged. ``client.service`` and ``client.registry`` are the two services themselves.
Identity management (:class:`dockyard.governance.identity.IdentityService`: users, tokens,
grants, ``whoami``) and endpoint management (:class:`dockyard.serving.service.EndpointService`:
``deploy``, ``promote``, ``rollback``...) are composed the same way, as ``client.identity`` and
``client.endpoints`` and through the client's own attributes (``client.create_token(...)``,
``client.deploy(...)``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.core.config import Settings, load_settings
from dockyard.core.errors import InvalidInput

if TYPE_CHECKING:
    from dockyard.backend import Backend
    from dockyard.core.registry_entities import ModelVersion
    from dockyard.governance.identity import IdentityService
    from dockyard.registry.service import RegistryService
    from dockyard.serving.service import EndpointService
    from dockyard.tracking.service import TrackingService

    class _Base(TrackingService, RegistryService, IdentityService, EndpointService):  # type: ignore[misc]
        """For type checkers: a Client has the methods of the four services."""

else:
    _Base = object

_backends: dict[tuple[str, str, str], Backend] = {}
_backends_lock = threading.Lock()


def _local_backend(settings: Settings) -> Backend:
    """One Backend (engines, pools) per store per process, shared by every local Client."""
    from dockyard.backend import Backend

    # The encryption settings are part of the key (as a hash: no key material is kept here).
    keys = f"{settings.encryption_key or ''}|{settings.key_provider or ''}".encode()
    key = (settings.resolved_db_url, settings.resolved_artifact_root, sha256(keys).hexdigest())
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = _backends[key] = Backend.open(settings)
        return backend


class Client(_Base):
    """Tracking and registry client; see :class:`dockyard.tracking.TrackingService` and
    :class:`dockyard.registry.service.RegistryService` for the methods.

    Parameters
    ----------
    tracking_uri:
        ``http(s)://host:port`` of a Dockyard server; default: ``DOCKYARD_TRACKING_URI``,
        and local mode when that is unset too.
    token:
        API token for the server; default ``DOCKYARD_TRACKING_TOKEN``.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        token: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.tracking_uri = tracking_uri or self.settings.tracking_uri
        self._token = token or self.settings.tracking_token
        self._service: Any = None
        self._registry: Any = None
        self._identity: Any = None
        self._endpoints: Any = None

    @property
    def is_remote(self) -> bool:
        return bool(self.tracking_uri)

    @property
    def service(self) -> TrackingService:
        if self._service is None:
            self._service = self._connect()
        return self._service  # type: ignore[no-any-return]

    def _connect(self) -> Any:
        uri = self.tracking_uri
        if uri:
            if not uri.startswith(("http://", "https://")):
                raise InvalidInput(
                    f"tracking URI {uri!r} must start with http:// or https:// "
                    "(unset it to use the local store)"
                )
            from dockyard.client.rest import RestTrackingService

            return RestTrackingService(uri, token=self._token)
        from dockyard.governance.audit import Actor

        return _local_backend(self.settings).tracking(Actor.local(self.settings.user))

    @property
    def registry(self) -> RegistryService:
        """The model registry (:class:`~dockyard.registry.service.RegistryService`, or its
        HTTP twin in remote mode)."""
        if self._registry is None:
            self._registry = self._connect_registry()
        return self._registry  # type: ignore[no-any-return]

    def _connect_registry(self) -> Any:
        uri = self.tracking_uri
        if uri:
            self.service  # noqa: B018 -- the same URI check, with the same message
            from dockyard.client.rest_registry import RestRegistryService

            return RestRegistryService(
                uri, token=self._token, cache_dir=self.settings.home_path / "cache" / "packages"
            )
        from dockyard.governance.audit import Actor

        return _local_backend(self.settings).registry(Actor.local(self.settings.user))

    @property
    def identity(self) -> IdentityService:
        """Users, tokens, grants and ``whoami``
        (:class:`~dockyard.governance.identity.IdentityService`, or its HTTP twin in remote
        mode)."""
        if self._identity is None:
            self._identity = self._connect_identity()
        return self._identity  # type: ignore[no-any-return]

    def _connect_identity(self) -> Any:
        uri = self.tracking_uri
        if uri:
            self.service  # noqa: B018 -- the same URI check, with the same message
            from dockyard.client.rest_identity import RestIdentityService

            return RestIdentityService(uri, token=self._token)
        from dockyard.governance.audit import Actor

        return _local_backend(self.settings).identity(Actor.local(self.settings.user))

    @property
    def endpoints(self) -> EndpointService:
        """Endpoints and their traffic policies: deploy, A/B, shadow, canary, promote, roll
        back (:class:`~dockyard.serving.service.EndpointService`, or its HTTP twin in remote
        mode)."""
        if self._endpoints is None:
            self._endpoints = self._connect_endpoints()
        return self._endpoints  # type: ignore[no-any-return]

    def _connect_endpoints(self) -> Any:
        uri = self.tracking_uri
        if uri:
            self.service  # noqa: B018 -- the same URI check, with the same message
            from dockyard.client.rest_endpoints import RestEndpointService

            return RestEndpointService(uri, token=self._token)
        from dockyard.governance.audit import Actor

        return _local_backend(self.settings).endpoints(Actor.local(self.settings.user))

    def register_package(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a local package folder (one holding ``manifest.json``) as a new version.

        Every file is verified against the manifest here first; then the files are stored
        (uploaded to the server in remote mode) and the registry checks them again, by
        digest, before it records the version (source ``package:<digest>``).
        """
        from dockyard.registry.packaging.manifest import verify_package

        _manifest, verified = verify_package(path)
        # Store exactly the bytes that were verified (a file edited meanwhile cannot slip in);
        # the registry checks them again against the stored manifest, by digest.
        blobs = {**verified, "manifest.json": Path(path, "manifest.json").read_bytes()}
        registry = self.registry
        upload = getattr(registry, "upload_blob", None)  # remote mode
        files: dict[str, tuple[str, int]] = {}
        for rel, data in sorted(blobs.items()):
            if upload is not None:
                files[rel] = upload([data])
            else:
                info = registry.artifacts.put_stream([data])
                files[rel] = (info.digest, info.size)
        return registry.create_model_version_from_files(
            name, files, description=description, tags=tags
        )

    def __getattr__(self, name: str) -> Any:
        # "service"/"registry"/"identity"/"endpoints" land here only when their property
        # raised AttributeError: re-raising keeps that error visible instead of recursing
        # through the property again.
        if name.startswith("_") or name in ("service", "registry", "identity", "endpoints"):
            raise AttributeError(name)
        service = self.service
        try:
            return getattr(service, name)
        except AttributeError:
            pass
        try:
            return getattr(self.registry, name)
        except AttributeError:
            pass
        try:
            return getattr(self.identity, name)
        except AttributeError:
            pass
        try:
            return getattr(self.endpoints, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            ) from None

    def __repr__(self) -> str:
        where = self.tracking_uri or f"local {self.settings.resolved_db_url}"
        return f"Client({where})"
