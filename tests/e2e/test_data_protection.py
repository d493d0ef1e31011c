"""Data protection on a real server: artifacts encrypted at rest, and no secret in any log line.

The server runs the way ``dockyard server`` runs it (a subprocess, auth on, debug logging) on
PostgreSQL with a password in its URL, an admin token and an encryption key. Artifacts and a
model package go through it; then every stored blob must be ciphertext, reads must return the
plaintext, and its terminal and log (one file) must hold none of the secrets -- not even a
token a careless caller put in a query string.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conftest import drop_pg_schema, make_pg_schema  # the shared PostgreSQL helpers
from dockyard.artifacts import ArtifactStore
from dockyard.artifacts.crypto import MAGIC, new_key
from dockyard.client.client import Client
from dockyard.core.config import load_settings
from dockyard.core.errors import ConfigError
from dockyard.registry.packaging import save_model

from ._server import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ADMIN_TOKEN = "dy_protect-admin-" + "q" * 40
STRAY_TOKEN = "dy_stray-in-a-query-" + "w" * 30
DB_PASSWORD = "pg-pass-" + "7" * 12
MARKER = b"PERSONAL-DATA-MARKER " * 500


def _with_password(url: str) -> str:
    # Trust auth ignores the password; the server must still never print it.
    return url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)


def test_encrypted_artifacts_and_secret_free_logs(tmp_path: Path) -> None:
    key = new_key()
    url, schema = make_pg_schema()
    home = tmp_path / "home"
    try:
        with running_server(
            home,
            log_level="debug",
            DOCKYARD_AUTH="on",
            DOCKYARD_ADMIN_TOKEN=ADMIN_TOKEN,
            DOCKYARD_ENCRYPTION_KEY=key,
            DOCKYARD_DB_URL=_with_password(url),
        ) as server:
            client = Client(server.url, token=ADMIN_TOKEN, settings=load_settings(environ={}))
            exp = client.create_experiment("protected")
            run = client.start_run(exp.experiment_id)
            data = tmp_path / "customers.csv"
            data.write_bytes(MARKER)
            client.log_artifact(run.run_id, data, "data")
            out = client.download_artifacts(run.run_id, "data/customers.csv", tmp_path / "dl")
            assert out.read_bytes() == MARKER

            x = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
            model = LogisticRegression().fit(x, (x["a"] > 20).astype(int))
            save_model(model, tmp_path / "pkg", input_example=x.head())
            mv = client.register_package("protected-model", tmp_path / "pkg")
            loaded = client.load_model(f"models:/protected-model/{mv.version}")
            assert list(loaded.predict(x.tail(3))) == [1, 1, 1]

            # Careless callers: a token in the query string, a wrong bearer token.
            with httpx.Client(base_url=server.url) as http:
                http.get(
                    f"/api/v1/experiments?token={STRAY_TOKEN}&access_token={ADMIN_TOKEN}",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                assert (
                    http.get(
                        "/api/v1/experiments", headers={"Authorization": f"Bearer {STRAY_TOKEN}"}
                    ).status_code
                    == 401
                )

        blobs = [p for p in (home / "artifacts" / "blobs").rglob("*") if p.is_file()]
        assert len(blobs) >= 3  # the CSV and the package's files
        for blob in blobs:
            raw = blob.read_bytes()
            assert raw.startswith(MAGIC), blob
            assert b"PERSONAL-DATA-MARKER" not in raw

        log = server.log.read_text()
        assert "artifacts are encrypted at rest" in log
        assert "GET /api/v1/experiments?token=" in log  # the access line is there, scrubbed
        for secret in (ADMIN_TOKEN, STRAY_TOKEN, DB_PASSWORD, key):
            assert secret not in log, f"a secret reached the server's log: {secret[:8]}..."
    finally:
        drop_pg_schema(schema)

    # The same artifact root opened without the key refuses to read, naming what is missing.
    with pytest.raises(ConfigError, match="DOCKYARD_ENCRYPTION_KEY"):
        b"".join(ArtifactStore(str(home / "artifacts")).open_blob(blobs[0].name))
