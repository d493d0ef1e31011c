"""`dockyard demo --auth`: the demo through a real server with auth on, as ana and risk-officer.

On SQLite and on PostgreSQL (the ``db_url`` fixture): a fresh store, then the same store again
(its users exist by then). What the demo reports is checked against the store itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.backend import Backend
from dockyard.cli.main import main
from dockyard.core.config import load_settings
from dockyard.demo import CHAMPION_ALIAS, MODEL_NAME
from dockyard.governance.audit import Actor

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LOCAL_ADMIN = "lead"
SECRET = re.compile(r"dy_[A-Za-z0-9_-]{40,}")


@pytest.fixture
def store(home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The demo's store (``home`` resets the fluent SDK) acting locally as ``lead``."""
    monkeypatch.setenv("DOCKYARD_DB_URL", db_url)
    monkeypatch.setenv("DOCKYARD_USER", LOCAL_ADMIN)
    for var in ("DOCKYARD_TRACKING_TOKEN", "DOCKYARD_AUTH", "DOCKYARD_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    yield db_url


def _open() -> Backend:
    return Backend.open(load_settings())


def _no_server_thread() -> bool:
    return not any(t.name == "dockyard-demo-server" for t in threading.enumerate())


def test_the_team_demo_trains_as_ana_and_risk_officer_signs_off(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from dockyard._demo_team import run_team_demo

    out = run_team_demo(rows=2_000, seed=0, folds=2)
    printed = capsys.readouterr()
    assert _no_server_thread()
    assert out["admin"] == LOCAL_ADMIN and out["url"].startswith("http://127.0.0.1:")
    assert out["registry"]["version"] == 1 and out["registry"]["passed"]
    # ana holds model:approve: what stops her is the four-eyes rule itself.
    assert "four-eyes rule" in out["self_approval_refused"]
    assert "author" in out["self_approval_refused"]
    assert "REFUSED (403): " in printed.out
    assert out["approval"]["actor"] == "risk-officer"
    assert out["approval"]["requester"] == "ana"
    assert out["audit_verification"]["ok"]
    # No token secret anywhere in what the demo printed.
    assert not SECRET.search(printed.out + printed.err)

    backend = _open()
    try:
        tracking = backend.tracking(Actor(LOCAL_ADMIN))
        registry = backend.registry(Actor(LOCAL_ADMIN))
        ids = backend.identity(Actor(LOCAL_ADMIN))
        # Every run (the parent and the five models) was created over HTTP by ana.
        exp = tracking.get_experiment_by_name("fraud-demo")
        runs = tracking.search_runs([exp.experiment_id], max_results=100).items
        assert len(runs) == 6 and {r.user for r in runs} == {"ana"}
        assert {r["run_id"] for r in out["results"]} <= {r.run_id for r in runs}
        # The version: by ana, approved by risk-officer under the policy, champion set by ana.
        mv = registry.get_model_version(MODEL_NAME, 1)
        assert mv.created_by == "ana" and mv.status == "approved"
        model = registry.get_registered_model(MODEL_NAME)
        assert model.require_approval and model.aliases == {CHAMPION_ALIAS: 1}
        steps = [(a.action, a.actor) for a in registry.approvals(MODEL_NAME, 1)]
        assert steps == [("request", "ana"), ("approve", "risk-officer")]
        events = tracking.list_audit_events(resource_id=f"{MODEL_NAME}/1", limit=100)
        by_action = {e.action: e.actor for e in events}
        assert by_action["model_version.create"] == "ana"
        assert by_action["approval.request"] == "ana"
        assert by_action["approval.approve"] == "risk-officer"
        assert by_action["model_version.transition"] == "risk-officer"
        alias_events = tracking.list_audit_events(action="alias.set", limit=100)
        assert [e.actor for e in alias_events] == ["ana"]
        # The roles the demo gave, and its tokens: used, then revoked.
        grants = {(g.principal, g.role) for g in ids.list_grants()}
        expected = {(LOCAL_ADMIN, "admin"), ("ana", "editor"), ("ana", "approver")}
        assert expected | {("risk-officer", "approver")} <= grants
        tokens = ids.list_tokens()
        assert {t.token_id for t in tokens} == set(out["token_ids"].values())
        assert all(t.revoked is not None and t.last_used is not None for t in tokens)
    finally:
        backend.close()

    # Again on the same store, through the CLI: the users exist; version 2 is signed off too.
    assert main(["demo", "--auth", "--rows", "2000"]) == 0
    printed = capsys.readouterr()
    assert _no_server_thread()
    assert "exists, role editor+approver" in printed.out
    assert "exists, role approver" in printed.out
    assert "fraud requires an approval (already on)" in printed.out
    assert "fraud@champion -> version 2 (was version 1)" in printed.out
    assert not SECRET.search(printed.out + printed.err)
    backend = _open()
    try:
        registry = backend.registry(Actor(LOCAL_ADMIN))
        assert registry.get_registered_model(MODEL_NAME).aliases == {CHAMPION_ALIAS: 2}
        assert [(a.action, a.actor) for a in registry.approvals(MODEL_NAME, 2)] == [
            ("request", "ana"),
            ("approve", "risk-officer"),
        ]
        assert len(backend.identity(Actor(LOCAL_ADMIN)).list_users()) == 3
        assert all(t.revoked is not None for t in backend.identity(Actor("ana")).list_tokens())
    finally:
        backend.close()
    assert main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out


def test_a_local_user_who_is_not_an_admin_is_told_whom_to_act_as(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = Backend.open(load_settings())
    try:
        ids = backend.identity(Actor("boss"))
        ids.create_user("boss", roles=["admin"])
        ids.create_user("ana", roles=["editor"])
    finally:
        backend.close()
    monkeypatch.setenv("DOCKYARD_USER", "ana")
    assert main(["demo", "--auth", "--rows", "2000"]) == 5
    err = capsys.readouterr().err
    assert "'ana', who is not an admin" in err and "DOCKYARD_USER" in err and "(boss)" in err
    assert _no_server_thread()
    backend = Backend.open(load_settings())
    try:
        assert backend.identity(Actor("boss")).list_tokens() == []  # nothing was created
    finally:
        backend.close()
