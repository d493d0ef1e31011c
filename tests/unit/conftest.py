"""Fixtures shared by the unit tests of model packages."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def features(frame: Any) -> Any:
    """The feature columns of the test module's ``frame`` (synthetic fraud transactions)."""
    from dockyard.data.synthetic import FEATURE_COLUMNS

    return frame[list(FEATURE_COLUMNS)]
