"""What every flavor shares: the saved-model record, the prediction adapter, helpers."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.core.errors import Unavailable

__all__ = ["Adapter", "SavedModel", "dist_version", "import_framework", "requirement"]


@dataclass
class Adapter:
    """A loaded model behind one calling convention (inputs already validated and cast)."""

    raw: Any
    predict: Callable[[Any], Any]
    predict_proba: Callable[[Any], Any] | None = None
    default_inputs: dict[str, Any] | None = None


@dataclass
class SavedModel:
    """What a flavor's ``save`` wrote into the package folder, for the manifest."""

    serialization: str
    framework: dict[str, str]
    flavor_config: dict[str, Any]
    requirements: list[str]
    adapter: Adapter
    skops_trusted_types: list[str] = field(default_factory=list)
    task: str | None = None
    classes: list[Any] | None = None


def dist_version(dist: str) -> str | None:
    """Installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirement(*dists: str) -> str:
    """``name==version`` for the first of ``dists`` that is installed (else the first name)."""
    for dist in dists:
        version = dist_version(dist)
        if version:
            return f"{dist}=={version}"
    return dists[0]


def import_framework(module: str, extra: str) -> Any:
    """Import a flavor's framework, or explain which Dockyard extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(
            f"this model needs the Python package {module!r}, which is not installed "
            f"({exc}); install it with: pip install 'dockyard[{extra}]'",
            module=module,
        ) from None
