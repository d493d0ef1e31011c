"""Opens what the services stand on, from the settings: the metadata store and artifacts.

The server opens one :class:`Backend` at start-up and builds a service per request with the
request's actor; the SDK in local mode and the CLI open one per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.core.config import Settings, load_settings

if TYPE_CHECKING:
    from dockyard.artifacts import ArtifactStore
    from dockyard.governance.audit import Actor
    from dockyard.governance.identity import IdentityService
    from dockyard.monitoring.service import MonitorService
    from dockyard.registry.service import RegistryService
    from dockyard.serving.service import EndpointService
    from dockyard.store.sql import SqlStore
    from dockyard.tracking.service import TrackingService


@dataclass
class Backend:
    settings: Settings
    store: SqlStore
    artifacts: ArtifactStore

    @classmethod
    def open(cls, settings: Settings | None = None, *, migrate: bool = True) -> Backend:
        from dockyard.artifacts import ArtifactStore
        from dockyard.artifacts.crypto import cipher_from_settings
        from dockyard.store.sql import SqlStore

        settings = settings or load_settings()
        store = SqlStore(
            settings.resolved_db_url,
            busy_timeout=float(settings.sqlite_busy_timeout),
            migrate=migrate,
        )
        cipher = cipher_from_settings(settings)
        return cls(settings, store, ArtifactStore(settings.resolved_artifact_root, cipher))

    def tracking(self, actor: Actor) -> TrackingService:
        from dockyard.tracking.service import TrackingService

        return TrackingService(self.store, self.artifacts, actor)

    def registry(self, actor: Actor, *, server: bool = False) -> RegistryService:
        """The registry for ``actor``; ``server=True`` applies the server's deserialisation
        policy (recorded skops types only from ``DOCKYARD_TRUSTED_MODULES``)."""
        from dockyard.registry.packaging.trust import parse_trusted_modules
        from dockyard.registry.service import RegistryService

        return RegistryService(
            self.store,
            self.artifacts,
            actor,
            cache_dir=self.settings.home_path / "cache" / "packages",
            trusted_modules=parse_trusted_modules(self.settings.trusted_modules)
            if server
            else None,
        )

    def endpoints(self, actor: Actor) -> EndpointService:
        from dockyard.serving.service import EndpointService

        return EndpointService(self.store, self.artifacts, actor)

    def monitoring(self, actor: Actor, *, server: bool = False) -> MonitorService:
        """Monitoring for ``actor``; ``server=True`` applies the server's rule (no reference
        files named by a caller)."""
        from dockyard.monitoring.service import MonitorService

        return MonitorService(self.store, self.artifacts, actor, backend=self, server=server)

    def identity(self, actor: Actor) -> IdentityService:
        from dockyard.governance.identity import IdentityService

        return IdentityService(self.store, actor)

    def close(self) -> None:
        self.store.close()
