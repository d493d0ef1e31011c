"""The SDK's client: the same tracking API in local mode and in remote mode.

``Client()`` talks straight to the store when no tracking URI is set (local mode, the actor is
the OS user) and to a Dockyard server over HTTP when ``DOCKYARD_TRACKING_URI`` (or
``tracking_uri=``) names one. Both sides expose exactly the methods of
:class:`dockyard.tracking.TrackingService`, return the same objects and raise the same error
classes, so code moves between a laptop and a team server unchanged.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dockyard.core.config import Settings, load_settings
from dockyard.core.errors import InvalidInput

if TYPE_CHECKING:
    from dockyard.backend import Backend
    from dockyard.tracking.service import TrackingService

    _Base = TrackingService
else:
    _Base = object

_backends: dict[tuple[str, str], Backend] = {}
_backends_lock = threading.Lock()


def _local_backend(settings: Settings) -> Backend:
    """One Backend (engines, pools) per store per process, shared by every local Client."""
    from dockyard.backend import Backend

    key = (settings.resolved_db_url, settings.resolved_artifact_root)
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = _backends[key] = Backend.open(settings)
        return backend


class Client(_Base):
    """Tracking client; see :class:`dockyard.tracking.TrackingService` for the methods.

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

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.service, name)

    def __repr__(self) -> str:
        where = self.tracking_uri or f"local {self.settings.resolved_db_url}"
        return f"Client({where})"
