"""Helpers of the attack tests: one seeded server app with a sentinel outside its store.

:class:`Target` wraps the in-process ASGI app (Starlette's TestClient, and a raw ASGI call that
sends a request target byte for byte, as uvicorn would, since HTTP clients normalise ``..`` out
of URLs). The seeded store holds an experiment, a run with an artifact, a model package logged
under ``model/`` in that run, a registered model ``fraud`` (version 1, alias ``champion``).

Next to the Dockyard home, *outside* every folder Dockyard owns, lies ``outside/secret.txt``
with a known content: every attack test checks that this file was neither read (its content
never appears in a response) nor written (its bytes and mtime are unchanged), and that nothing
was created beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

from _asgi import send_raw
from dockyard.core.config import load_settings
from dockyard.governance.audit import Actor
from dockyard.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"
SECRET = b"TOP-SECRET-SENTINEL-6f1d2c"
MISSING_RUN = "f" * 32


def assert_envelope(status: int, body: Any, *, codes: tuple[str, ...] | None = None) -> None:
    """A 4xx with exactly the error envelope (and, if given, one of ``codes``)."""
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert isinstance(error["message"], str) and error["message"].strip()
    if codes is not None:
        assert error["code"] in codes, body


def tree_state(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file below ``folder`` (links not followed): its mode and sha256."""
    state: dict[str, tuple[int, str]] = {}
    for root, dirs, files in os.walk(folder):
        for name in [*files, *dirs]:
            p = Path(root, name)
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            state[p.relative_to(folder).as_posix()] = (st.st_mode, digest)
    return state


class Target:
    """The seeded app, its ids, and snapshots of the store and of the sentinel."""

    def __init__(self, client: TestClient, home: Path, outside: Path) -> None:
        self.client = client
        self.app: Any = client.app
        self.home = home
        self.outside = outside
        self.sentinel = outside / "secret.txt"
        self.artifact_root = home / "artifacts"
        self.ids: dict[str, str] = {}

    def fmt(self, text: str) -> str:
        return text.format(**self.ids, missing=MISSING_RUN)

    # -- snapshots -------------------------------------------------------------------------------

    def outside_state(self) -> Any:
        st = self.sentinel.stat()
        return tree_state(self.outside), st.st_mtime_ns

    def snapshot(self) -> str:
        backend = self.app.state.backend
        svc = backend.tracking(Actor("snapshot"))
        reg = backend.registry(Actor("snapshot"))
        exps = [e.to_dict() for e in svc.list_experiments(stage="all").items]
        runs = [r.to_dict() for r in svc.search_runs(stage="all", max_results=1000).items]
        artifacts = {
            r["run_id"]: backend.store.read(lambda u, rid=r["run_id"]: u.list_artifacts(rid, ""))
            for r in runs
        }
        models = [m.to_dict() for m in reg.list_registered_models().items]
        versions = {
            m["name"]: [v.to_dict() for v in reg.list_model_versions(m["name"]).items]
            for m in models
        }
        blobs = sorted(backend.artifacts.iter_digests())
        files = tree_state(self.artifact_root / "blobs")
        tmp = self.artifact_root / "tmp"
        temps = sorted(os.listdir(tmp)) if tmp.is_dir() else []
        return json.dumps(
            [exps, runs, artifacts, models, versions, blobs, files, temps], sort_keys=True
        )

    # -- requests --------------------------------------------------------------------------------

    def raw(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send ``target`` to the ASGI app untouched (see :func:`_asgi.send_raw`)."""
        return send_raw(self.app, method, target, body, headers)


def _seed(t: Target, package: Path) -> None:
    c = t.client
    exp = c.post(f"{API}/experiments", json={"name": "seeded"}).json()
    run = c.post(f"{API}/runs", json={"experiment_id": exp["experiment_id"]}).json()
    rid = run["run_id"]
    assert c.put(f"{API}/runs/{rid}/artifacts/dir/file.txt", content=b"hello").status_code == 201
    for f in sorted(package.rglob("*")):
        if f.is_file():
            rel = f.relative_to(package).as_posix()
            r = c.put(f"{API}/runs/{rid}/artifacts/model/{rel}", content=f.read_bytes())
            assert r.status_code == 201, r.text
    r = c.post(f"{API}/models/fraud/versions", json={"source": f"runs:/{rid}/model"})
    assert r.status_code == 201, r.text
    r = c.put(f"{API}/models/fraud/aliases/champion", json={"version": 1})
    assert r.status_code == 200, r.text
    t.ids.update(exp=str(exp["experiment_id"]), run=rid)


def make_target(base: Path, package: Path, **overrides: Any) -> Iterator[Target]:
    home = base / "home"
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    settings = load_settings(overrides={"home": str(home), **overrides}, environ={})
    with TestClient(create_app(settings)) as client:
        t = Target(client, home, outside)
        _seed(t, package)
        yield t
