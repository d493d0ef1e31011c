"""Model-building helpers shared by the unit tests of model packages."""

from __future__ import annotations

from typing import Any


def category_encoder() -> Any:
    """One-hot encode the categorical columns, pass the others through (unfitted)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    from dockyard.data.synthetic import CATEGORICAL_COLUMNS

    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_COLUMNS))],
        remainder="passthrough",
    )
