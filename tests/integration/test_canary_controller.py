"""The canary controller: its decisions from window statistics, and the loop over the real
prediction log and store (SQLite and PostgreSQL): advance, promote, roll back on an injected
error rate, one replica at a time (the lease), every decision stored with its evidence."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from test_approvals import register  # the shared package helper

from dockyard.backend import Backend
from dockyard.core.serving_entities import CanaryPlan, ModelRef, TrafficPolicy
from dockyard.governance.audit import Actor
from dockyard.serving.controller import CanaryController, VariantStats, decide
from dockyard.serving.predlog import PredictionLogWriter, PredictionRecord

ME = Actor("tester")


def _policy(step: int = 0, started: int = 0, **plan: object) -> TrafficPolicy:
    c = CanaryPlan(
        "new",
        steps=(10, 50, 100),
        bake_seconds=plan.pop("bake_seconds", 60),  # type: ignore[arg-type]
        min_requests=plan.pop("min_requests", 20),  # type: ignore[arg-type]
        gates=plan.pop("gates", ("error_rate<0.05", "p99_ms<=primary*1.5")),  # type: ignore[arg-type]
        step=step,
        step_started=started,
    )
    weights = {"old": 100 - c.percent, "new": c.percent}
    return TrafficPolicy(
        "old",
        {"old": ModelRef("m", 1), "new": ModelRef("m", 2)},
        weights,
        canary=c,
        salt="s",
    )


GOOD = {
    "old": VariantStats(requests=200, errors=0, p99_ms=10.0),
    "new": VariantStats(requests=30, errors=0, p99_ms=12.0),
}


def test_decisions() -> None:
    p = _policy()
    action, reason, ev = decide(p, GOOD, now=30_000)
    assert (action, reason) == ("hold", "baking step 1 (10 %)")
    assert ev["canary"]["requests"] == 30 and ev["gates"][1]["bound"] == pytest.approx(15.0)

    action, reason, _ = decide(p, GOOD, now=61_000)
    assert action == "advance" and "moving to 50 %" in reason

    few = {**GOOD, "new": VariantStats(requests=5, p99_ms=1.0)}
    action, reason, _ = decide(p, few, now=61_000)
    assert action == "hold" and "waiting for 20 canary requests" in reason

    bad = {**GOOD, "new": VariantStats(requests=40, errors=4, p99_ms=11.0)}
    action, reason, ev = decide(p, bad, now=1_000)  # even while baking
    assert action == "rollback" and reason == "gate failed: error_rate<0.05"
    assert ev["gates"][0]["value"] == pytest.approx(0.1) and ev["gates"][0]["passed"] is False

    slow = {**GOOD, "new": VariantStats(requests=40, errors=0, p99_ms=16.0)}
    assert decide(p, slow, now=61_000)[0] == "rollback"

    last = _policy(step=2)
    only_new = {"new": VariantStats(requests=30, errors=0, p99_ms=99.0)}
    action, _, ev = decide(last, only_new, now=61_000)
    assert action == "promote"  # no primary traffic at 100 %: the relative gate is skipped
    assert "relative gate skipped" in ev["gates"][1]["note"]


def _records(endpoint: str, variant: str, version: int, n: int, t0: int, status: int = 200):  # type: ignore[no-untyped-def]
    return [
        PredictionRecord(
            request_id=uuid.uuid4().hex,
            endpoint=endpoint,
            variant=variant,
            model="fraud",
            model_version=version,
            time=t0 + i,
            latency_ms=5.0,
            status=status,
            inputs={"amount": float(i)},
            prediction=1,
        )
        for i in range(n)
    ]


def test_the_loop_advances_promotes_and_rolls_back(backend: Backend, tmp_path: Path) -> None:
    reg = backend.registry(ME)
    reg.create_registered_model("fraud")
    for v in (1, 2, 3):
        register(backend, reg, tmp_path / f"p{v}", f"model {v}".encode())
        reg.transition("fraud", v, "approved", override_gate=True, reason="test")
    svc = backend.endpoints(ME)
    svc.deploy("ep", "fraud/1")
    svc.deploy("ep", "fraud/2", mode="canary", steps="50,100", bake=0, min_requests=10)
    writer = PredictionLogWriter(backend.artifacts.root_uri, flush_seconds=0.05)
    start = svc.get_endpoint("ep").policy.canary.step_started  # type: ignore[union-attr]
    writer.log(_records("ep", "fraud-1", 1, 20, start + 1))
    writer.log(_records("ep", "fraud-2", 2, 12, start + 1))
    writer.flush()

    one = CanaryController(backend, holder="replica-1")
    two = CanaryController(backend, holder="replica-2")
    assert one.run_once(now=start + 1000) == [
        ("ep", "advance", "step 1 (50 %) passed; moving to 100 %")
    ]
    assert two.run_once(now=start + 1000) == []  # replica 1 holds the lease
    ep = svc.get_endpoint("ep")
    assert ep.policy.weights == {"fraud-1": 0, "fraud-2": 100}

    step2 = ep.policy.canary.step_started  # type: ignore[union-attr]
    writer.log(_records("ep", "fraud-2", 2, 15, step2 + 1))
    writer.flush()
    [(_, action, _)] = one.run_once(now=step2 + 1000)
    assert action == "promote"
    ep = svc.get_endpoint("ep")
    assert ep.policy.weights == {"fraud-2": 100} and ep.policy.canary is None
    assert reg.get_model_version("fraud", 2).status == "production"
    assert reg.get_model_version("fraud", 1).status == "deprecated"

    # The next canary fails: an injected error rate rolls it back, with the evidence kept.
    svc.deploy("ep", "fraud/3", mode="canary", steps="25,100", bake="1h", min_requests=10)
    t3 = svc.get_endpoint("ep").policy.canary.step_started  # type: ignore[union-attr]
    writer.log(_records("ep", "fraud-3", 3, 8, t3 + 1))
    writer.log(_records("ep", "fraud-3", 3, 4, t3 + 50, status=500))
    writer.log(_records("ep", "fraud-2", 2, 40, t3 + 1))
    writer.close()
    [(_, action, reason)] = one.run_once(now=t3 + 2000)
    assert action == "rollback" and "error_rate<0.01" in reason
    ep = svc.get_endpoint("ep")
    assert ep.policy.weights == {"fraud-2": 100} and ep.policy.canary is None
    rollback = svc.list_decisions("ep", limit=1)[0]
    assert rollback.action == "rollback" and rollback.actor == "dockyard-controller"
    assert rollback.evidence["canary"]["errors"] == 4
    assert rollback.evidence["canary"]["requests"] == 12
    one.stop()
    # Released: another replica takes over at once.
    assert two.run_once(now=t3 + 3000) == []  # nothing left to decide, but it ran


def test_cli_controller_once(sdk_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dockyard.cli.main import main

    assert main(["controller", "--once"]) == 0
    assert capsys.readouterr().out == ""  # no canary anywhere: nothing to decide
    assert main(["controller", "--once", "--interval", "0"]) == 2
    assert "more than 0 seconds" in capsys.readouterr().err
