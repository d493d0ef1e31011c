"""Tracking: experiments, runs, params, metrics, tags, dataset inputs and artifacts.

The service is loaded on first use, so importing a light submodule (the value checks the remote
client shares, say) does not pull in the store and SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["DEFAULT_EXPERIMENT", "TrackingService"]

if TYPE_CHECKING:
    from dockyard.tracking.service import DEFAULT_EXPERIMENT, TrackingService


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dockyard.tracking import service

        return getattr(service, name)
    raise AttributeError(f"module 'dockyard.tracking' has no attribute {name!r}")
