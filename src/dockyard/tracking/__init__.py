"""Tracking: experiments, runs, params, metrics, tags, dataset inputs and artifacts."""

from dockyard.tracking.service import DEFAULT_EXPERIMENT, TrackingService

__all__ = ["DEFAULT_EXPERIMENT", "TrackingService"]
