"""Roles and permissions, enforced in the service layer (the SDK in local mode obeys them too).

Every public method of TrackingService and RegistryService must be declared in its permission
table (deny by default); a principal without grants is refused by every one of them.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from dockyard.backend import Backend
from dockyard.core.errors import PermissionDenied
from dockyard.governance.audit import Actor
from dockyard.governance.permissions import (
    PERMISSION_ATTR,
    PERMISSIONS,
    ROLES,
    Authorizer,
    enforced,
    public_methods,
)
from dockyard.registry.service import REGISTRY_PERMISSIONS, RegistryService
from dockyard.tracking.service import TRACKING_PERMISSIONS, TrackingService

SERVICES = [(TrackingService, TRACKING_PERMISSIONS), (RegistryService, REGISTRY_PERMISSIONS)]


@pytest.mark.parametrize(("cls", "table"), SERVICES, ids=["tracking", "registry"])
def test_every_public_method_is_declared_and_gated(cls: type, table: dict[str, str]) -> None:
    methods = public_methods(cls)
    assert len(methods) >= 20
    assert sorted(table) == methods
    for name in methods:
        assert table[name] in PERMISSIONS
        if name in vars(cls):  # inherited shortcuts delegate to gated methods (next test)
            assert getattr(getattr(cls, name), PERMISSION_ATTR) == table[name], name


def test_an_undeclared_method_cannot_ship() -> None:
    with pytest.raises(TypeError, match=r"\['sneaky'\] are not in its permission table"):

        @enforced({"ok": "experiment:read"})
        class Service:
            def ok(self) -> None: ...

            def sneaky(self) -> None: ...

    with pytest.raises(TypeError, match="unknown permission"):

        @enforced({"ok": "experiment:raed"})
        class Typo:
            def ok(self) -> None: ...


def test_role_hierarchy() -> None:
    assert ROLES["viewer"] < ROLES["editor"] < ROLES["deployer"]
    assert ROLES["viewer"] < ROLES["approver"]
    assert "model:approve" in ROLES["approver"] and "model:write" not in ROLES["approver"]
    assert ROLES["admin"] == frozenset(PERMISSIONS)


@pytest.mark.parametrize(("cls", "table"), SERVICES, ids=["tracking", "registry"])
def test_no_grants_means_every_method_is_refused(
    backend: Backend, cls: type, table: dict[str, str]
) -> None:
    actor = Actor("nobody", authorizer=Authorizer.for_principal("nobody", []))
    service: Any = backend.tracking(actor) if cls is TrackingService else backend.registry(actor)
    for name in public_methods(cls):
        method = getattr(service, name)
        required = [
            p
            for p in inspect.signature(method).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        with pytest.raises(PermissionDenied) as info:
            method(*["0" * 32] * len(required))  # refused before any argument is looked at
        assert info.value.details["permission"] == table[name], name
        assert info.value.details["permission"] in info.value.message


@pytest.fixture
def people(backend: Backend) -> dict[str, Any]:
    """An admin, and users with grants on one experiment and one model."""
    admin = Actor("root")
    backend.identity(Actor("laptop")).create_user("root", roles=["admin"])
    tr = backend.tracking(admin)
    mine = tr.create_experiment("mine")
    theirs = tr.create_experiment("theirs")
    run_mine = tr.start_run(mine.experiment_id)
    run_theirs = tr.start_run(theirs.experiment_id)
    reg = backend.registry(admin)
    reg.create_registered_model("fraud")
    reg.create_registered_model("churn")
    ids = backend.identity(admin)
    ids.create_user("ed")
    ids.grant("ed", "editor", "experiment", mine.experiment_id)
    ids.grant("ed", "editor", "registered_model", "fraud")
    ids.create_user("vi", roles=["viewer"])
    ids.create_user("ap", roles=["approver"])
    return {
        "mine": mine.experiment_id,
        "theirs": theirs.experiment_id,
        "run_mine": run_mine.run_id,
        "run_theirs": run_theirs.run_id,
    }


def test_per_experiment_grants(backend: Backend, people: dict[str, Any]) -> None:
    ed = backend.tracking(Actor("ed"))
    ed.log_metric(people["run_mine"], "auc", 0.9)
    ed.set_experiment_tag(people["mine"], "team", "risk")
    assert [e.experiment_id for e in ed.list_experiments().items] == [people["mine"]]
    runs = ed.search_runs().items
    assert [r.run_id for r in runs] == [people["run_mine"]]

    with pytest.raises(PermissionDenied) as info:
        ed.log_metric(people["run_theirs"], "auc", 0.9)
    assert info.value.message == (
        f"'ed' lacks permission experiment:write on experiment {people['theirs']!r}"
    )
    assert info.value.details["resource_id"] == people["theirs"]
    theirs = f"experiment '{people['theirs']}'"
    with pytest.raises(PermissionDenied, match=f"experiment:read on {theirs}"):
        ed.get_run(people["run_theirs"])
    with pytest.raises(PermissionDenied, match="experiment:read"):
        ed.search_runs([people["theirs"]])
    with pytest.raises(PermissionDenied, match="experiment:write on every experiment"):
        ed.create_experiment("new")
    with pytest.raises(PermissionDenied, match="audit:read"):
        ed.list_audit_events()


def test_viewer_reads_everything_and_writes_nothing(
    backend: Backend, people: dict[str, Any]
) -> None:
    vi = backend.tracking(Actor("vi"))
    assert {e.name for e in vi.list_experiments().items} == {"mine", "theirs"}
    assert vi.get_run(people["run_theirs"]).run_id == people["run_theirs"]
    # Holding the permission on no resource at all is refused before anything is looked up.
    with pytest.raises(PermissionDenied, match=r"experiment:write \(on any experiment\)"):
        vi.log_param(people["run_mine"], "lr", 0.1)
    with pytest.raises(PermissionDenied, match="experiment:write"):
        vi.end_run(people["run_mine"])
    with pytest.raises(PermissionDenied, match="experiment:write"):
        vi.delete_experiment(people["mine"])
    reg = backend.registry(Actor("vi"))
    assert reg.get_registered_model("fraud").name == "fraud"
    with pytest.raises(PermissionDenied, match=r"model:write \(on any model\)"):
        reg.update_registered_model("fraud", "x")


def test_registry_grants_and_approval(backend: Backend, people: dict[str, Any]) -> None:
    ed = backend.registry(Actor("ed"))
    ed.set_registered_model_tag("fraud", "team", "risk")
    assert [m.name for m in ed.list_registered_models().items] == ["fraud"]
    with pytest.raises(PermissionDenied, match="model:read on model 'churn'"):
        ed.get_registered_model("churn")
    with pytest.raises(PermissionDenied, match="model:approve on model 'fraud'"):
        ed.transition("fraud", 1, "approved")
    with pytest.raises(PermissionDenied, match="model:write on model 'brand-new'"):
        ed.create_registered_model("brand-new")
    # Registering a run's package also needs to read the run's experiment.
    theirs = f"experiment '{people['theirs']}'"
    with pytest.raises(PermissionDenied, match=f"experiment:read on {theirs}"):
        ed.create_model_version("fraud", f"runs:/{people['run_theirs']}/model")

    ap = backend.registry(Actor("ap"))
    with pytest.raises(PermissionDenied, match="model:write on model 'fraud'"):
        ap.transition("fraud", 1, "deprecated")
    with pytest.raises(PermissionDenied, match="model:write"):
        ap.set_alias("fraud", "champion", 1)
    assert backend.tracking(Actor("ap")).list_audit_events(action="user.create")
