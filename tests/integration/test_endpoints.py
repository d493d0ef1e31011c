"""Endpoints and traffic policies through the service, on SQLite and PostgreSQL: deploy,
A/B, shadow, canary steps, promote, rollback, the registry following, approvals, permissions,
concurrent writers and the audit trail."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from test_approvals import register  # the shared package helper

from dockyard.backend import Backend
from dockyard.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from dockyard.core.serving_entities import CanaryPlan, Gate, ModelRef, TrafficPolicy
from dockyard.governance.audit import Actor
from dockyard.serving.service import EndpointService, split_weights

ME = Actor("tester")


@pytest.fixture
def versions(backend: Backend, tmp_path: Path) -> dict[int, str]:
    """fraud versions 1..4: 1-3 approved, 4 a candidate."""
    reg = backend.registry(ME)
    reg.create_registered_model("fraud")
    out = {}
    for v in range(1, 5):
        got = register(backend, reg, tmp_path / f"pkg{v}", f"model {v}".encode())
        assert got == v
        if v < 4:
            reg.transition("fraud", v, "approved", override_gate=True, reason="test")
        out[v] = reg.get_model_version("fraud", v).status
    return out


def _svc(backend: Backend, actor: Actor = ME) -> EndpointService:
    return backend.endpoints(actor)


def _status(backend: Backend, v: int) -> str:
    return backend.registry(ME).get_model_version("fraud", v).status


def test_deploy_ab_shadow_promote_rollback(backend: Backend, versions: dict[int, str]) -> None:
    svc = _svc(backend)
    ep = svc.deploy("fraud-ep", "fraud/1", description="the fraud scorer")
    assert ep.version == 1 and ep.policy.weights == {"fraud-1": 100}
    assert ep.policy.primary_ref == ModelRef("fraud", 1) and len(ep.policy.salt) == 16
    assert _status(backend, 1) == "production"

    ep = svc.deploy("fraud-ep", "fraud/2", mode="ab", weight=30)
    assert ep.version == 2 and ep.last_good_version == 1
    assert ep.policy.weights == {"fraud-1": 70, "fraud-2": 30}
    assert _status(backend, 2) == "approved"  # not at 100 %: no production yet

    ep = svc.deploy("fraud-ep", "fraud/4", mode="shadow")  # a candidate may shadow
    assert ep.policy.shadows == {"fraud-4": ModelRef("fraud", 4)}
    with pytest.raises(Conflict, match="only approved or production versions take live traffic"):
        svc.deploy("fraud-ep", "fraud/4", mode="ab", weight=10, variant="cand")

    ep = svc.promote("fraud-ep", "fraud-2", reason="B won")
    assert ep.policy.weights == {"fraud-2": 100} and ep.policy.shadows
    assert _status(backend, 2) == "production" and _status(backend, 1) == "deprecated"

    ep = svc.rollback("fraud-ep", reason="complaints")
    assert ep.policy.weights == {"fraud-1": 70, "fraud-2": 30}  # version 3's policy
    assert [d.action for d in svc.list_decisions("fraud-ep")][:2] == ["rollback", "promote"]
    history = svc.policy_history("fraud-ep")
    assert [h["version"] for h in history] == [5, 4, 3, 2, 1]
    assert history[0]["reason"].startswith("rollback to version 3")

    events = backend.tracking(ME).list_audit_events(resource_type="endpoint")
    assert [e.action for e in events] == [
        "endpoint.deploy",
        "endpoint.ab",
        "endpoint.shadow",
        "endpoint.promote",
        "endpoint.rollback",
    ]
    transitions = backend.tracking(ME).list_audit_events(action="model_version.transition")
    assert any("endpoint fraud-ep" in (e.details.get("reason") or "") for e in transitions)


def test_canary_steps_promote_and_rollback(backend: Backend, versions: dict[int, str]) -> None:
    svc = _svc(backend)
    svc.deploy("ep", "fraud/1")
    ep = svc.deploy(
        "ep",
        "fraud/2",
        mode="canary",
        steps="10,50,100",
        bake="1m",
        min_requests=20,
        gates=["error_rate<0.01", "p99_ms<=primary*1.5"],
    )
    plan = ep.policy.canary
    assert plan is not None and plan.steps == (10, 50, 100) and plan.bake_seconds == 60
    assert ep.policy.weights == {"fraud-1": 90, "fraud-2": 10} and ep.last_good_version == 1
    with pytest.raises(Conflict, match="canary of fraud/2 is running"):
        svc.deploy("ep", "fraud/3", mode="ab", weight=5)
    # A stale controller decision is ignored; a current one moves the canary.
    assert svc.apply_canary_step("ep", 1, "advance", {}, "stale") is None
    ep = svc.apply_canary_step("ep", 2, "advance", {"n": 30}, "gates held")
    assert ep is not None and ep.policy.weights == {"fraud-1": 50, "fraud-2": 50}
    assert ep.policy.canary is not None and ep.policy.canary.step == 1
    held = svc.apply_canary_step("ep", 3, "hold", {"n": 5}, "waiting for 20 requests")
    assert held is not None and held.version == 3
    svc.apply_canary_step("ep", 3, "hold", {"n": 6}, "waiting for 20 requests")  # not repeated
    ep = svc.apply_canary_step("ep", 3, "promote", {"n": 40}, "all steps passed")
    assert ep is not None and ep.policy.weights == {"fraud-2": 100} and ep.policy.canary is None
    assert ep.last_good_version == 1  # the policy before the whole canary
    assert _status(backend, 2) == "production" and _status(backend, 1) == "deprecated"
    actions = [d.action for d in svc.list_decisions("ep")]
    assert actions == ["promote", "hold", "advance", "canary", "deploy"]

    # A failing canary rolls back to the policy before it.
    svc.deploy("ep", "fraud/3", mode="canary", steps=[50, 100], bake=0, min_requests=0)
    cur = svc.get_endpoint("ep")
    ep = svc.apply_canary_step("ep", cur.version, "rollback", {"error_rate": 0.2}, "error_rate")
    assert ep is not None and ep.policy.weights == {"fraud-2": 100} and ep.policy.canary is None
    [last] = svc.list_decisions("ep", limit=1)
    assert last.action == "rollback" and last.evidence["error_rate"] == 0.2


def test_bad_requests_are_clear(backend: Backend, versions: dict[int, str]) -> None:
    svc = _svc(backend)
    with pytest.raises(NotFound, match="create it with a first deploy"):
        svc.deploy("new", "fraud/1", mode="ab", weight=10)
    with pytest.raises(InvalidInput, match="endpoint name"):
        svc.deploy("../etc", "fraud/1")
    with pytest.raises(NotFound):
        svc.deploy("e", "fraud/99")
    with pytest.raises(NotFound):
        svc.deploy("e", "nomodel/1")
    svc.deploy("e", "fraud/1")
    with pytest.raises(InvalidInput, match="weight"):
        svc.deploy("e", "fraud/2", mode="ab")
    with pytest.raises(InvalidInput, match="gate"):
        svc.deploy("e", "fraud/2", mode="canary", gates=["latency is fine"])
    with pytest.raises(InvalidInput, match="steps"):
        svc.deploy("e", "fraud/2", mode="canary", steps="50,10")
    with pytest.raises(InvalidInput, match="mode"):
        svc.deploy("e", "fraud/2", mode="blue-green")
    with pytest.raises(InvalidInput, match="sum to 100"):
        svc.set_weights("e", {"fraud-1": 90})
    with pytest.raises(Conflict, match="primary"):
        svc.remove_variant("e", "fraud-1")
    with pytest.raises(Conflict, match="no earlier policy"):
        svc.rollback("e")
    with pytest.raises(NotFound):
        svc.get_endpoint("nope")
    # Nothing half-written: the endpoint is still at its first version.
    assert svc.get_endpoint("e").version == 1


def test_approval_policy_gates_live_traffic(backend: Backend, versions: dict[int, str]) -> None:
    backend.registry(ME).set_approval_policy("fraud", True)
    svc = _svc(backend)
    with pytest.raises(Conflict, match="needs an approval"):
        svc.deploy("e", "fraud/1")
    assert svc.list_endpoints() == []


def test_permissions(backend: Backend, versions: dict[int, str]) -> None:
    ids = backend.identity(Actor("laptop"))
    ids.create_user("root", roles=["admin"])
    root = backend.identity(Actor("root"))
    root.create_user("dep", roles=["deployer"])
    root.create_user("vic", roles=["viewer"])
    _svc(backend, Actor("dep")).deploy("e", "fraud/1")
    viewer = _svc(backend, Actor("vic"))
    assert [e.name for e in viewer.list_endpoints()] == ["e"]
    with pytest.raises(PermissionDenied, match="endpoint:deploy"):
        viewer.deploy("e", "fraud/2", mode="ab", weight=10)
    with pytest.raises(PermissionDenied, match="endpoint:deploy"):
        viewer.rollback("e")


def test_concurrent_deployers_never_lose_a_change(
    backend: Backend, versions: dict[int, str]
) -> None:
    svc = _svc(backend)
    svc.deploy("e", "fraud/1")
    results: list[Any] = []

    def worker(i: int) -> None:
        try:
            results.append(_svc(backend).set_weights("e", {"fraud-1": 100}, reason=f"w{i}"))
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    done = [r for r in results if not isinstance(r, Exception)]
    assert svc.get_endpoint("e").version == 1 + len(done)
    assert len(svc.policy_history("e")) == 1 + len(done)


def test_policy_values() -> None:
    assert split_weights({"a": 100}, "b", 30) == {"a": 70, "b": 30}
    assert split_weights({"a": 50, "b": 50}, "c", 33) == {"a": 34, "b": 33, "c": 33}
    g = Gate.parse("p99_ms<=primary*1.2")
    assert (g.metric, g.op, g.threshold, g.relative) == ("p99_ms", "<=", 1.2, "*")
    assert g.bound(10.0) == pytest.approx(12.0) and g.bound(None) is None
    assert str(Gate.parse("error_rate<0.01")) == "error_rate<0.01"
    assert Gate.parse("error_rate<=primary+0.005").bound(0.01) == pytest.approx(0.015)
    plan = CanaryPlan("c", steps="5,25,100", bake_seconds="10m")
    assert CanaryPlan.from_dict(plan.to_dict()) == plan
    p = TrafficPolicy.single(ModelRef("m", 1), salt="s")
    assert TrafficPolicy.from_dict(p.to_dict()) == p
    with pytest.raises(InvalidInput, match="sum to 100"):
        TrafficPolicy("a", {"a": ModelRef("m", 1)}, {"a": 90})


def test_gate_thresholds_round_trip_exactly_and_bad_ones_are_clear() -> None:
    for text in ("p99_ms<1234567", "error_rate<0.0012345678", "p99_ms<=primary*1.2"):
        gate = Gate.parse(text)
        assert Gate.parse(str(gate)) == gate
    with pytest.raises(InvalidInput, match="not a number"):
        Gate.parse({"metric": "p99_ms", "op": "<", "threshold": "abc"})


def test_a_nul_in_a_description_is_refused(backend: Backend, versions: dict[int, str]) -> None:
    with pytest.raises(InvalidInput, match="description"):
        _svc(backend).deploy("e", "fraud/1", description="bad\x00text")
    assert _svc(backend).list_endpoints() == []


def test_a_0006_store_upgrades_to_0007_and_back(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from dockyard.store.engine import _alembic_config, _migration_lock, create_engines, upgrade

    tables = {"endpoints", "endpoint_policies", "endpoint_decisions", "leases"}
    engines = create_engines(db_url)
    try:
        assert upgrade(engines, "0006") == (None, "0006")
        assert not tables & set(inspect(engines.writer).get_table_names())
        assert upgrade(engines, "0007") == ("0006", "0007")
        assert tables <= set(inspect(engines.writer).get_table_names())
        with _migration_lock(engines) as conn:
            command.downgrade(_alembic_config(conn), "0006")
            conn.commit()
        assert not tables & set(inspect(engines.writer).get_table_names())
    finally:
        engines.dispose()
