"""What both server commands (``dockyard server``, ``dockyard serve``) do to their process:
logging next to uvicorn's (secrets scrubbed), settings exported to worker processes, and the
URL they announce. Kept apart from the apps so that neither pays for the other's imports."""

from __future__ import annotations

import logging
import os
import sys

from dockyard.core.config import SETTINGS, Settings
from dockyard.core.secrets import install as install_secret_filter

__all__ = ["configure_logging", "export_settings", "url"]


def export_settings(settings: Settings) -> None:
    """Put every non-default setting in the environment, for worker processes to load."""
    for s in SETTINGS:
        value = settings.values.get(s.name)
        if settings.sources.get(s.name, "default") != "default" and value is not None:
            os.environ[s.env] = str(value)


def configure_logging(level: str) -> None:
    """Show Dockyard's log lines next to uvicorn's, unless the host app configured logging."""
    logger = logging.getLogger("dockyard")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    install_secret_filter(("dockyard",))
    logger.setLevel(level.upper())


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
