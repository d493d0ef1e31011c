"""The e2e fixtures: one real server process per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on a free loopback port with its own fresh ``DOCKYARD_HOME`` (SQLite)."""
    with running_server(tmp_path_factory.mktemp("server-home")) as server:
        yield server
