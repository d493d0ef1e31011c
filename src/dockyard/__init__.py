"""Dockyard: carry a model through its whole life — data, runs, registry, serving, monitoring.

``import dockyard as dy`` is cheap: the SDK's names are loaded on first use, so heavy
dependencies (SQLAlchemy, pandas, scikit-learn) are imported only by the code that needs them.

>>> import dockyard as dy
>>> with dy.start_run(experiment="fraud") as run:  # doctest: +SKIP
...     dy.log_param("max_depth", 6)
...     dy.log_metric("auc", 0.93, step=1)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Client": "dockyard.client.client",
    "ActiveRun": "dockyard.client.fluent",
    "start_run": "dockyard.client.fluent",
    "end_run": "dockyard.client.fluent",
    "active_run": "dockyard.client.fluent",
    "flush": "dockyard.client.fluent",
    "get_client": "dockyard.client.fluent",
    "set_tracking_uri": "dockyard.client.fluent",
    "log_param": "dockyard.client.fluent",
    "log_params": "dockyard.client.fluent",
    "log_metric": "dockyard.client.fluent",
    "log_metrics": "dockyard.client.fluent",
    "set_tag": "dockyard.client.fluent",
    "set_tags": "dockyard.client.fluent",
    "log_artifact": "dockyard.client.fluent",
    "log_artifacts": "dockyard.client.fluent",
    "log_input": "dockyard.client.fluent",
    "log_model": "dockyard.client.models",
    "load_model": "dockyard.client.models",
    "register_model": "dockyard.client.models",
    "ModelInfo": "dockyard.client.models",
    "RegisteredModel": "dockyard.core.registry_entities",
    "ModelVersion": "dockyard.core.registry_entities",
    "ValidationResult": "dockyard.core.registry_entities",
    "Metric": "dockyard.core.entities",
    "Run": "dockyard.core.entities",
    "RunStatus": "dockyard.core.entities",
    "Experiment": "dockyard.core.entities",
    "DatasetInput": "dockyard.core.entities",
    "DockyardError": "dockyard.core.errors",
    "InvalidInput": "dockyard.core.errors",
    "NotFound": "dockyard.core.errors",
    "AlreadyExists": "dockyard.core.errors",
    "Conflict": "dockyard.core.errors",
    "PermissionDenied": "dockyard.core.errors",
    "Unavailable": "dockyard.core.errors",
    "IntegrityError": "dockyard.core.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from dockyard.client.client import Client as Client
    from dockyard.client.fluent import ActiveRun as ActiveRun
    from dockyard.client.fluent import active_run as active_run
    from dockyard.client.fluent import end_run as end_run
    from dockyard.client.fluent import flush as flush
    from dockyard.client.fluent import get_client as get_client
    from dockyard.client.fluent import log_artifact as log_artifact
    from dockyard.client.fluent import log_artifacts as log_artifacts
    from dockyard.client.fluent import log_input as log_input
    from dockyard.client.fluent import log_metric as log_metric
    from dockyard.client.fluent import log_metrics as log_metrics
    from dockyard.client.fluent import log_param as log_param
    from dockyard.client.fluent import log_params as log_params
    from dockyard.client.fluent import set_tag as set_tag
    from dockyard.client.fluent import set_tags as set_tags
    from dockyard.client.fluent import set_tracking_uri as set_tracking_uri
    from dockyard.client.fluent import start_run as start_run
    from dockyard.client.models import ModelInfo as ModelInfo
    from dockyard.client.models import load_model as load_model
    from dockyard.client.models import log_model as log_model
    from dockyard.client.models import register_model as register_model
    from dockyard.core.entities import DatasetInput as DatasetInput
    from dockyard.core.entities import Experiment as Experiment
    from dockyard.core.entities import Metric as Metric
    from dockyard.core.entities import Run as Run
    from dockyard.core.entities import RunStatus as RunStatus
    from dockyard.core.errors import AlreadyExists as AlreadyExists
    from dockyard.core.errors import Conflict as Conflict
    from dockyard.core.errors import DockyardError as DockyardError
    from dockyard.core.errors import IntegrityError as IntegrityError
    from dockyard.core.errors import InvalidInput as InvalidInput
    from dockyard.core.errors import NotFound as NotFound
    from dockyard.core.errors import PermissionDenied as PermissionDenied
    from dockyard.core.errors import Unavailable as Unavailable
    from dockyard.core.registry_entities import ModelVersion as ModelVersion
    from dockyard.core.registry_entities import RegisteredModel as RegisteredModel
    from dockyard.core.registry_entities import ValidationResult as ValidationResult
