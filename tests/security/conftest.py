"""Fixtures of the attack tests (helpers in :mod:`._target`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._target import Target, make_target


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small secure (skops) scikit-learn package."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from dockyard.registry.packaging import save_model

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (x["a"] > 0).astype(int)
    dest = tmp_path_factory.mktemp("pkg") / "model"
    save_model(LogisticRegression().fit(x, y), dest, input_example=x.head())
    return dest


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, package: Path
) -> Iterator[Target]:
    """The seeded app, on SQLite and on PostgreSQL (skipped with a reason when none answers)."""
    overrides = {}
    schema = None
    if request.param == "postgresql":
        from conftest import make_pg_schema  # the shared PostgreSQL helper

        overrides["db_url"], schema = make_pg_schema()
    try:
        yield from make_target(
            tmp_path_factory.mktemp(f"target-{request.param}"), package, **overrides
        )
    finally:
        if schema is not None:
            from conftest import drop_pg_schema

            drop_pg_schema(schema)
