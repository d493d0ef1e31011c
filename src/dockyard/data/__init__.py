"""The data service: describe datasets for tracking, and draw synthetic ones.

Names are loaded on first use (PEP 562), so ``import dockyard.data`` pulls in neither pandas
nor NumPy; :mod:`dockyard.data.synthetic` imports them as soon as one of its names is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.data.dataset import (
        SCHEMA_TYPES,
        dataset_digest,
        describe_dataset,
        infer_schema,
    )
    from dockyard.data.synthetic import (
        CATEGORICAL_COLUMNS,
        FEATURE_COLUMNS,
        LABEL_COLUMN,
        NUMERIC_COLUMNS,
        make_fraud_transactions,
        train_test_split_by_time,
    )

_EXPORTS: dict[str, str] = {
    "SCHEMA_TYPES": "dockyard.data.dataset",
    "dataset_digest": "dockyard.data.dataset",
    "describe_dataset": "dockyard.data.dataset",
    "infer_schema": "dockyard.data.dataset",
    "CATEGORICAL_COLUMNS": "dockyard.data.synthetic",
    "FEATURE_COLUMNS": "dockyard.data.synthetic",
    "LABEL_COLUMN": "dockyard.data.synthetic",
    "NUMERIC_COLUMNS": "dockyard.data.synthetic",
    "make_fraud_transactions": "dockyard.data.synthetic",
    "train_test_split_by_time": "dockyard.data.synthetic",
}

__all__ = [
    "CATEGORICAL_COLUMNS",
    "FEATURE_COLUMNS",
    "LABEL_COLUMN",
    "NUMERIC_COLUMNS",
    "SCHEMA_TYPES",
    "dataset_digest",
    "describe_dataset",
    "infer_schema",
    "make_fraud_transactions",
    "train_test_split_by_time",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
