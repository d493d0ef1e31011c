"""A real server with auth on, the SDK sending DOCKYARD_TRACKING_TOKEN, and the bootstrap token.

Started the way ``dockyard server`` starts it (``dockyard.server.app.run``), on loopback with
``DOCKYARD_AUTH=on``; its stderr (the terminal) and log go to one file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dockyard.client.client import Client
from dockyard.core.config import load_settings
from dockyard.core.errors import PermissionDenied, Unauthenticated

from ._server import running_server

pytestmark = pytest.mark.e2e
ADMIN_TOKEN = "dy_e2e-admin-" + "z" * 40


@contextmanager
def auth_server(home: Path, workers: int = 1, **env: str) -> Iterator[tuple[str, Path]]:
    """A real server with ``DOCKYARD_AUTH=on``; yields its URL and its terminal/log file."""
    with running_server(home, workers=workers, DOCKYARD_AUTH="on", **env) as server:
        yield server.url, server.log


def _client(url: str, token: str | None) -> Client:
    settings = load_settings(environ={})
    return Client(url, token=token, settings=settings)


def test_sdk_with_a_token_against_a_server_with_auth_on(tmp_path: Path) -> None:
    with auth_server(tmp_path / "home", DOCKYARD_ADMIN_TOKEN=ADMIN_TOKEN) as (url, log):
        admin = _client(url, ADMIN_TOKEN)
        exp = admin.create_experiment("secured")
        run = admin.start_run(exp.experiment_id)
        admin.log_metric(run.run_id, "auc", 0.93)
        assert admin.get_run(run.run_id).metrics["auc"] == pytest.approx(0.93)
        with pytest.raises(Unauthenticated, match="Bearer"):
            _client(url, None).list_experiments()
        with pytest.raises(Unauthenticated, match="not valid"):
            _client(url, "dy_" + "n" * 43).list_experiments()
        # A viewer's token (made on the server's store, as `dockyard tokens create` does).
        from dockyard.backend import Backend
        from dockyard.governance.audit import Actor

        home = str(tmp_path / "home")
        backend = Backend.open(load_settings(overrides={"home": home}, environ={}))
        try:
            ids = backend.identity(Actor("admin"))
            ids.create_user("vic", roles=["viewer"])
            viewer_token = ids.create_token("vic").secret
        finally:
            backend.close()
        viewer = _client(url, viewer_token)
        assert [e.name for e in viewer.list_experiments().items] == ["secured"]
        with pytest.raises(PermissionDenied, match="experiment:write"):
            viewer.log_metric(run.run_id, "auc", 0.1)
        text = log.read_text()
        assert "auth on" in text
        assert ADMIN_TOKEN not in text and viewer_token not in text


def test_a_generated_admin_token_is_printed_once(tmp_path: Path) -> None:
    with auth_server(tmp_path / "home", workers=2) as (url, log):
        text = log.read_text()
        found = re.findall(r"dy_[A-Za-z0-9_-]{40,}", text)
        assert len(found) == 1, text
        assert [e.name for e in _client(url, found[0]).list_experiments().items] == []
