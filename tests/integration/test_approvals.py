"""Four-eyes approvals of a version for production: policy, request, approve, reject, the
production check bound to the package digest, the audit trail; the service on SQLite and
PostgreSQL, then the REST routes, the REST client and the CLI."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from dockyard.backend import Backend
from dockyard.core.config import load_settings
from dockyard.core.errors import Conflict, InvalidInput, PermissionDenied
from dockyard.core.registry_entities import Approval
from dockyard.governance.audit import Actor
from dockyard.governance.identity import authenticate
from dockyard.registry.service import RegistryService
from dockyard.store import schema as t

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/api/v1"
ADMIN_TOKEN = "dy_test-admin-" + "a" * 40
NEEDS = "needs an approval from a user with the approver role who is neither the author"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_package(folder: Path, payload: bytes) -> Path:
    """A small valid package (an ONNX-flavored manifest over opaque bytes)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(payload)
    manifest = {
        "format_version": 1,
        "flavor": "onnx",
        "framework": {"name": "onnx", "version": "1.0"},
        "serialization": "onnx",
        "task": "classification",
        "files": {"model.onnx": {"sha256": _sha(payload), "size": len(payload)}},
        "flavor_config": {"model_file": "model.onnx"},
        "created_time": 1,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def register(backend: Backend, registry: Any, folder: Path, payload: bytes) -> int:
    write_package(folder, payload)
    files = {}
    for f in sorted(folder.iterdir()):
        info = backend.artifacts.put_stream([f.read_bytes()])
        files[f.name] = (info.digest, info.size)
    return int(registry.create_model_version_from_files("fraud", files).version)


def make_team(backend: Backend) -> None:
    """alice writes and approves (the author), dave writes and approves (the requester),
    bob writes, carol approves, vic views; root is the admin."""
    backend.identity(Actor("laptop")).create_user("root", roles=["admin"])
    ids = backend.identity(Actor("root"))
    ids.create_user("alice", roles=["editor", "approver"])
    ids.create_user("dave", roles=["editor", "approver"])
    ids.create_user("bob", roles=["editor"])
    ids.create_user("carol", roles=["approver"])
    ids.create_user("vic", roles=["viewer"])


@pytest.fixture
def team(backend: Backend, tmp_path: Path) -> dict[str, RegistryService]:
    make_team(backend)
    people = {n: backend.registry(Actor(n)) for n in ("root", "alice", "dave", "bob", "carol")}
    people["vic"] = backend.registry(Actor("vic"))
    assert register(backend, people["alice"], tmp_path / "p1", b"weights-1") == 1
    assert register(backend, people["alice"], tmp_path / "p2", b"weights-2") == 2
    return people


def _approved(reg: RegistryService, version: int) -> None:
    reg.transition("fraud", version, "approved", override_gate=True, reason="no holdout here")


def _audit(backend: Backend, action: str) -> list[Any]:
    return backend.tracking(Actor("root")).list_audit_events(action=action, limit=1000)


# -- the service --------------------------------------------------------------------------------


def test_the_policy_is_off_by_default_and_changes_nothing(
    backend: Backend, team: dict[str, RegistryService]
) -> None:
    root = team["root"]
    assert root.get_registered_model("fraud").require_approval is False
    assert root.check_production_approval("fraud", 1) is None
    _approved(root, 1)
    assert root.transition("fraud", 1, "production").status == "production"
    [moved] = [
        e
        for e in _audit(backend, "model_version.transition")
        if e.details["to_status"] == "production"
    ]
    assert "approved_by" not in moved.details


def test_setting_the_policy_needs_model_approve_and_is_audited(
    backend: Backend, team: dict[str, RegistryService]
) -> None:
    with pytest.raises(PermissionDenied, match="model:approve"):
        team["bob"].set_approval_policy("fraud", True)
    with pytest.raises(InvalidInput, match="true or false"):
        team["root"].set_approval_policy("fraud", "yes")  # type: ignore[arg-type]
    assert team["carol"].set_approval_policy("fraud", True).require_approval is True
    assert team["vic"].get_registered_model("fraud").require_approval is True
    [event] = _audit(backend, "approval_policy.set")
    assert (event.actor, event.resource_type, event.resource_id) == (
        "carol",
        "registered_model",
        "fraud",
    )
    assert event.details == {"require_approval": True, "previous": False}


def test_four_eyes(backend: Backend, team: dict[str, RegistryService]) -> None:
    with pytest.raises(Conflict, match="no approval was requested"):
        team["carol"].approve("fraud", 1)
    with pytest.raises(PermissionDenied, match="model:write"):
        team["carol"].request_approval("fraud", 1)  # an approver alone does not request
    req = team["dave"].request_approval("fraud", 1, "ready for prod")
    mv = team["root"].get_model_version("fraud", 1)
    assert (req.action, req.actor, req.requester, req.comment) == (
        "request",
        "dave",
        "dave",
        "ready for prod",
    )
    assert req.package_digest == mv.package_digest

    with pytest.raises(PermissionDenied) as author:
        team["alice"].approve("fraud", 1)
    assert "'alice' cannot approve version 1 of model 'fraud': they are its author" in str(
        author.value.message
    )
    assert author.value.details["rule"] == "four_eyes"
    with pytest.raises(PermissionDenied, match="they are its requester"):
        team["dave"].approve("fraud", 1)
    with pytest.raises(PermissionDenied, match="they are its author"):
        team["alice"].reject("fraud", 1, "no")
    with pytest.raises(PermissionDenied, match=r"'vic' lacks permission model:approve"):
        team["vic"].approve("fraud", 1)
    with pytest.raises(PermissionDenied, match=r"'bob' lacks permission model:approve"):
        team["bob"].approve("fraud", 1)
    with pytest.raises(InvalidInput, match="rejection needs a comment"):
        team["carol"].reject("fraud", 1, "  ")

    ok = team["carol"].approve("fraud", 1, "looks good")
    assert (ok.action, ok.actor, ok.requester) == ("approve", "carol", "dave")
    assert ok.package_digest == mv.package_digest
    steps = team["vic"].approvals("fraud", 1)
    assert [(s.action, s.actor) for s in steps] == [("request", "dave"), ("approve", "carol")]
    assert Approval.from_dict(json.loads(json.dumps(ok.to_dict()))) == ok
    # Refusals wrote nothing.
    assert [e.actor for e in _audit(backend, "approval.approve")] == ["carol"]


def test_production_is_refused_without_an_approval_and_allowed_with_one(
    backend: Backend, team: dict[str, RegistryService]
) -> None:
    root, carol = team["root"], team["carol"]
    root.set_approval_policy("fraud", True)
    _approved(root, 1)
    with pytest.raises(Conflict) as none:
        root.transition("fraud", 1, "production")
    assert (
        f"version 1 of model 'fraud' {NEEDS} (alice) nor the requester (none yet) before it "
        "can go to production: no approval was requested" in none.value.message
    )
    assert none.value.details["missing"] == "approval"

    team["dave"].request_approval("fraud", 1)
    with pytest.raises(Conflict, match=r"requester \(dave\).*waiting for an approver"):
        root.transition("fraud", 1, "production")
    carol.reject("fraud", 1, "calibration is off")
    with pytest.raises(Conflict, match="rejected by carol: calibration is off"):
        root.transition("fraud", 1, "production")
    with pytest.raises(Conflict, match="rejected by carol"):
        team["vic"].check_production_approval("fraud", 1)
    approval = carol.approve("fraud", 1, "fixed")
    assert team["vic"].check_production_approval("fraud", 1) == approval
    assert root.transition("fraud", 1, "production").status == "production"
    moved = [
        e
        for e in _audit(backend, "model_version.transition")
        if e.details["to_status"] == "production"
    ]
    assert [(e.details["approved_by"], e.details["approval_id"]) for e in moved] == [
        ("carol", approval.id)
    ]
    # A later rejection withdraws the approval (e.g. for a roll back to this version).
    carol.reject("fraud", 1, "withdrawn")
    with pytest.raises(Conflict, match="rejected by carol: withdrawn"):
        root.check_production_approval("fraud", 1)
    # A refused move changed nothing.
    _approved(root, 2)
    with pytest.raises(Conflict, match=NEEDS):
        root.transition("fraud", 2, "production")
    assert root.get_model_version("fraud", 2).status == "approved"


def test_a_different_package_does_not_ride_on_an_approval(
    backend: Backend, team: dict[str, RegistryService]
) -> None:
    root = team["root"]
    root.set_approval_policy("fraud", True)
    team["dave"].request_approval("fraud", 1)
    approval = team["carol"].approve("fraud", 1)
    assert root.check_production_approval("fraud", 1) == approval
    # Version 2 is another package: version 1's approval says nothing about it.
    with pytest.raises(Conflict, match="no approval was requested"):
        root.check_production_approval("fraud", 2)
    # The package under version 1 is swapped behind the registry's back.
    other = root.get_model_version("fraud", 2).package_digest

    def swap(u: Any) -> None:
        mv = t.model_versions.c
        u.conn.execute(
            update(t.model_versions)
            .where(mv.name == "fraud", mv.version == 1)
            .values(package_digest=other)
        )

    backend.store.write(swap)
    with pytest.raises(Conflict, match="a different package cannot ride on an approval"):
        root.check_production_approval("fraud", 1)
    _approved(root, 1)
    with pytest.raises(Conflict, match=f"given for package {approval.package_digest[:12]}"):
        root.transition("fraud", 1, "production")
    # And approving it again needs a request for the package it holds now.
    with pytest.raises(Conflict, match="no approval was requested"):
        team["carol"].approve("fraud", 1)


def test_every_step_is_audited(backend: Backend, team: dict[str, RegistryService]) -> None:
    digest = team["root"].get_model_version("fraud", 1).package_digest
    team["root"].set_approval_policy("fraud", True)
    req = team["dave"].request_approval("fraud", 1, "please")
    rej = team["carol"].reject("fraud", 1, "not yet")
    app = team["carol"].approve("fraud", 1)
    [r] = _audit(backend, "approval.request")
    [j] = _audit(backend, "approval.reject")
    [a] = _audit(backend, "approval.approve")
    assert (r.actor, r.resource_type, r.resource_id) == ("dave", "model_version", "fraud/1")
    assert r.details == {"approval_id": req.id, "package_digest": digest, "comment": "please"}
    assert j.details == {
        "approval_id": rej.id,
        "requester": "dave",
        "package_digest": digest,
        "comment": "not yet",
    }
    assert (a.actor, a.details["approval_id"], a.details["requester"]) == ("carol", app.id, "dave")
    assert len(_audit(backend, "approval_policy.set")) == 1


def test_a_final_version_cannot_be_approved(team: dict[str, RegistryService]) -> None:
    team["root"].transition("fraud", 2, "rejected", reason="bad")
    with pytest.raises(Conflict, match=r"cannot request an approval for version 2 .* rejected"):
        team["dave"].request_approval("fraud", 2)


# -- REST ----------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[tuple[Any, TestClient, dict[str, str]]]:
    from dockyard.server.app import create_app

    settings = load_settings(
        overrides={"home": str(tmp_path), "db_url": db_url, "auth": "on"}, environ={}
    )
    app = create_app(settings, admin_token=ADMIN_TOKEN)
    with TestClient(app) as c:
        backend: Backend = app.state.backend
        admin = authenticate(backend.store, ADMIN_TOKEN)
        ids = backend.identity(admin)
        tokens = {"admin": ADMIN_TOKEN}
        for name, roles in (("alice", ["editor"]), ("dave", ["editor"]), ("carol", ["approver"])):
            ids.create_user(name, roles=roles)
            tokens[name] = ids.create_token(name).secret
        register(backend, backend.registry(Actor("alice")), tmp_path / "pkg", b"weights-1")
        yield app, c, tokens


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_rest_approvals(server: tuple[Any, TestClient, dict[str, str]]) -> None:
    _, c, tok = server
    v1 = f"{API}/models/fraud/versions/1"
    r = c.put(
        f"{API}/models/fraud/approval-policy",
        json={"require_approval": True},
        headers=_h(tok["dave"]),
    )
    assert r.status_code == 403 and "model:approve" in r.text
    r = c.put(
        f"{API}/models/fraud/approval-policy",
        json={"require_approval": True},
        headers=_h(tok["admin"]),
    )
    assert r.status_code == 200 and r.json()["require_approval"] is True
    body = {"to": "approved", "override_gate": True, "reason": "test"}
    assert c.post(f"{v1}/transition", json=body, headers=_h(tok["admin"])).status_code == 200

    r = c.post(f"{v1}/transition", json={"to": "production"}, headers=_h(tok["admin"]))
    assert r.status_code == 409
    assert NEEDS + " (alice) nor the requester (none yet)" in r.json()["error"]["message"]
    assert c.get(f"{v1}/production-approval", headers=_h(tok["carol"])).status_code == 409

    r = c.post(
        f"{v1}/approvals", json={"action": "request", "comment": "go"}, headers=_h(tok["dave"])
    )
    assert r.status_code == 201 and r.json()["requester"] == "dave"
    r = c.post(f"{v1}/approvals", json={"action": "approve"}, headers=_h(tok["alice"]))
    assert r.status_code == 403 and "model:approve" in r.text  # alice is an editor only
    r = c.post(f"{v1}/approvals", json={"action": "reject"}, headers=_h(tok["carol"]))
    assert r.status_code == 422 and "comment" in r.text
    r = c.post(f"{v1}/approvals", json={"action": "ship-it"}, headers=_h(tok["carol"]))
    assert r.status_code == 422
    r = c.post(
        f"{v1}/approvals", json={"action": "approve", "comment": "ok"}, headers=_h(tok["carol"])
    )
    assert r.status_code == 201, r.text
    approval = r.json()
    assert (approval["actor"], approval["action"]) == ("carol", "approve")

    items = c.get(f"{v1}/approvals", headers=_h(tok["alice"])).json()["items"]
    assert [(i["action"], i["actor"]) for i in items] == [("request", "dave"), ("approve", "carol")]
    r = c.get(f"{v1}/production-approval", headers=_h(tok["alice"]))
    assert r.status_code == 200 and r.json()["approval"] == approval
    r = c.post(f"{v1}/transition", json={"to": "production"}, headers=_h(tok["admin"]))
    assert r.status_code == 200 and r.json()["status"] == "production"


def test_rest_client_speaks_the_same_api(server: tuple[Any, TestClient, dict[str, str]]) -> None:
    from dockyard.client.rest_registry import RestRegistryService

    _, c, tok = server
    remote = RestRegistryService("http://testserver")
    remote._http.close()
    remote._http = c  # the in-process app instead of a socket

    def as_(user: str) -> RestRegistryService:
        c.headers["Authorization"] = f"Bearer {tok[user]}"
        return remote

    assert as_("admin").set_approval_policy("fraud", True).require_approval is True
    with pytest.raises(Conflict, match=NEEDS):
        as_("carol").check_production_approval("fraud", 1)
    req = as_("dave").request_approval("fraud", 1, "go")
    assert isinstance(req, Approval) and req.requester == "dave"
    with pytest.raises(PermissionDenied, match="model:approve"):
        as_("dave").approve("fraud", 1)
    rej = as_("carol").reject("fraud", 1, "not yet")
    ok = as_("carol").approve("fraud", 1)
    assert as_("alice").approvals("fraud", 1) == [req, rej, ok]
    assert as_("alice").check_production_approval("fraud", 1) == ok
    assert as_("admin").set_approval_policy("fraud", False).require_approval is False
    assert as_("alice").check_production_approval("fraud", 1) is None


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_approvals(
    sdk_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from dockyard.cli.main import main
    from dockyard.client.client import Client, _local_backend

    def cli(user: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("DOCKYARD_USER", user)
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    monkeypatch.setenv("DOCKYARD_USER", "alice")
    client = Client()
    client.register_package("fraud", write_package(tmp_path / "pkg", b"weights-1"))
    ids = _local_backend(client.settings).identity(Actor("alice"))
    ids.create_user("alice", roles=["admin"])
    ids.create_user("dave", roles=["editor"])
    ids.create_user("carol", roles=["approver"])

    code, out, err = cli("dave", "models", "policy", "fraud", "--require-approval")
    assert code == 5 and "model:approve" in err
    code, out, err = cli("alice", "models", "policy", "fraud", "--require-approval")
    assert code == 0, err
    assert "fraud: promotion to production needs an approval" in out
    code, out, err = cli(
        "alice", "models", "transition", "fraud/1", "approved", "--override-gate", "-r", "test"
    )
    assert code == 0, err
    code, out, err = cli("alice", "models", "transition", "fraud/1", "production")
    assert code == 4 and NEEDS in err and "Traceback" not in err

    code, out, err = cli("dave", "models", "approval", "request", "fraud/1", "-c", "please")
    assert code == 0, err
    assert "fraud version 1: approval requested by dave" in out
    code, out, err = cli("alice", "models", "approval", "approve", "fraud/1")
    assert code == 5 and "they are its author" in err
    code, out, err = cli("carol", "models", "approval", "approve", "fraud/1", "--comment", "ok")
    assert code == 0, err
    code, out, err = cli("carol", "models", "approval", "list", "fraud/1", "--json")
    assert code == 0, err
    steps = json.loads(out)
    assert [(s["action"], s["actor"], s["comment"]) for s in steps] == [
        ("request", "dave", "please"),
        ("approve", "carol", "ok"),
    ]
    code, out, err = cli("carol", "models", "approval", "list", "fraud/1")
    assert code == 0 and "carol" in out
    code, out, err = cli("alice", "models", "transition", "fraud/1", "production")
    assert code == 0, err
    assert "approved -> production" in out
