"""The canary controller: a reconciliation loop over endpoints whose policy has a canary.

Each pass, for every endpoint with a canary running, it reads the prediction log of the
current step's window (from ``step_started`` on; the log is the one record every serving
replica writes, so the numbers cover all of them), computes per-variant statistics and decides:

* **rollback** as soon as the canary has ``min_requests`` requests in the window and a gate
  fails -- an error rate too high, a p99 too slow, quality below the primary's;
* **hold** while the step is baking (``bake_seconds`` not over) or has too few requests;
* **advance** to the next step (or **promote** at the last one: the canary becomes the
  primary at 100 %) when the step has baked, has its requests, and every gate holds.

Gates compare the canary's value with a number, or with the primary's value on the same
window (``p99_ms<=primary*1.2``); a relative gate with no primary traffic in the window (the
100 % step) is skipped and says so in the evidence. Forced requests (the debug header) and
shadow calls do not count. Every decision is stored with its evidence -- the numbers it saw --
through :meth:`EndpointService.apply_canary_step`, which also refuses a decision taken on a
policy version that is no longer current.

Safe with several replicas: a pass runs only while holding the ``canary-controller`` lease in
the metadata store (renewed each pass, expiring after ``lease_seconds``), and every state it
acts on lives in the store, so a controller that restarts mid-rollout picks up where the
policy stands.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dockyard.core.serving_entities import Gate, TrafficPolicy
from dockyard.governance.audit import Actor
from dockyard.governance.permissions import Authorizer

if TYPE_CHECKING:
    import pyarrow as pa

    from dockyard.backend import Backend

__all__ = ["CONTROLLER", "CanaryController", "VariantStats", "decide", "window_stats"]

log = logging.getLogger("dockyard.serving.controller")

#: The principal the controller acts as (audit events, decisions).
CONTROLLER = "dockyard-controller"
LEASE = "canary-controller"
_STAT_COLUMNS = ("request_id", "row", "variant", "shadow", "forced", "time", "latency_ms", "status")


@dataclass(frozen=True)
class VariantStats:
    """One variant's numbers over a window: requests (distinct request ids), failed requests
    (status >= 500) and latency percentiles (per request)."""

    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return None if self.requests == 0 else self.errors / self.requests

    def value(self, metric: str) -> float | None:
        return self.error_rate if metric == "error_rate" else getattr(self, metric)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": self.error_rate}


def window_stats(table: pa.Table) -> dict[str, VariantStats]:
    """Per-variant statistics of prediction-log rows (see :mod:`dockyard.serving.predlog`):
    live, unforced requests only; one latency and one status per request."""
    import numpy as np
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return {}
    keep = pc.and_(pc.invert(table["shadow"]), pc.invert(table["forced"]))
    table = table.filter(pc.fill_null(keep, False))
    out: dict[str, VariantStats] = {}
    if table.num_rows == 0:
        return out
    first = table.filter(pc.equal(table["row"], 0))  # one row per request
    variants = first["variant"].to_numpy(zero_copy_only=False)
    latency = first["latency_ms"].to_numpy(zero_copy_only=False).astype(float)
    status = first["status"].to_numpy(zero_copy_only=False)
    for name in sorted(set(variants.tolist())):
        mask = variants == name
        lat = latency[mask]
        lat = lat[~np.isnan(lat)]
        pct = np.percentile(lat, [50, 95, 99]) if lat.size else [None] * 3
        out[str(name)] = VariantStats(
            requests=int(mask.sum()),
            errors=int((status[mask] >= 500).sum()),
            p50_ms=None if pct[0] is None else float(pct[0]),
            p95_ms=None if pct[1] is None else float(pct[1]),
            p99_ms=None if pct[2] is None else float(pct[2]),
        )
    return out


def _gate_results(
    gates: tuple[Gate, ...], canary: VariantStats, primary: VariantStats | None
) -> list[dict[str, Any]]:
    results = []
    for gate in gates:
        value = canary.value(gate.metric)
        base = primary.value(gate.metric) if primary is not None else None
        bound = gate.bound(base)
        if value is None:
            verdict, note = None, f"no {gate.metric} for the canary in this window"
        elif bound is None:
            verdict, note = None, "no primary traffic in this window: relative gate skipped"
        else:
            verdict, note = gate.holds(value, bound), ""
        results.append(
            {
                "gate": str(gate),
                "value": value,
                "primary": base,
                "bound": bound,
                "passed": verdict,
                **({"note": note} if note else {}),
            }
        )
    return results


def decide(
    policy: TrafficPolicy, stats: Mapping[str, VariantStats], now: int
) -> tuple[str, str, dict[str, Any]]:
    """The controller's decision for a policy with a canary: ``(action, reason, evidence)``,
    action one of ``advance``, ``promote``, ``rollback``, ``hold``. Pure: no I/O."""
    plan = policy.canary
    if plan is None:
        raise ValueError("the policy has no canary")
    canary = stats.get(plan.variant, VariantStats())
    primary = stats.get(policy.primary)
    elapsed = max(0.0, (now - plan.step_started) / 1000)
    gates = _gate_results(plan.gates, canary, primary)
    evidence: dict[str, Any] = {
        "step": plan.step + 1,
        "steps": len(plan.steps),
        "percent": plan.percent,
        "elapsed_seconds": round(elapsed, 3),
        "bake_seconds": plan.bake_seconds,
        "min_requests": plan.min_requests,
        "canary": canary.to_dict(),
        "primary": None if primary is None else primary.to_dict(),
        "gates": gates,
    }
    enough = canary.requests >= plan.min_requests
    failed = [g["gate"] for g in gates if g["passed"] is False]
    if enough and failed:
        return "rollback", f"gate failed: {', '.join(failed)}", evidence
    if elapsed < plan.bake_seconds:
        return "hold", f"baking step {plan.step + 1} ({plan.percent} %)", evidence
    if not enough:
        return (
            "hold",
            f"waiting for {plan.min_requests} canary requests in step {plan.step + 1} "
            f"(have {canary.requests})",
            evidence,
        )
    unknown = [
        g["gate"] for g in gates if g["passed"] is None and "relative" not in g.get("note", "")
    ]
    if unknown:
        return "hold", f"no value yet for {', '.join(unknown)}", evidence
    if plan.step + 1 == len(plan.steps):
        return "promote", f"every gate held through all {len(plan.steps)} steps", evidence
    return (
        "advance",
        f"step {plan.step + 1} ({plan.percent} %) passed; moving to {plan.steps[plan.step + 1]} %",
        evidence,
    )


class CanaryController:
    """Runs :func:`decide` over every endpoint with a canary, under a lease
    (:class:`dockyard.loops.LeasedLoop`)."""

    def __init__(
        self,
        backend: Backend,
        *,
        interval: float = 5.0,
        lease_seconds: float = 30.0,
        holder: str | None = None,
    ) -> None:
        from dockyard.loops import LeasedLoop

        self.backend = backend
        self.actor = Actor(CONTROLLER, authorizer=Authorizer.allow_all(CONTROLLER))
        self.loop = LeasedLoop(
            backend.store,
            LEASE,
            self._pass,
            interval=interval,
            lease_seconds=lease_seconds,
            holder=holder,
        )

    def run_once(self, now: int | None = None) -> list[tuple[str, str, str]]:
        """One pass; returns ``(endpoint, action, reason)`` for each canary looked at (empty
        when another replica holds the lease)."""
        return self.loop.run_once(now) or []

    def _pass(self, at: int) -> list[tuple[str, str, str]]:
        from dockyard.serving.predlog import read_predictions

        store = self.backend.store
        service = self.backend.endpoints(self.actor)
        cipher = self.backend.artifacts.cipher
        done: list[tuple[str, str, str]] = []
        for ep in store.read(lambda u: u.list_endpoints()):
            plan = ep.policy.canary
            if plan is None:
                continue
            try:
                table = read_predictions(
                    self.backend.artifacts.root_uri,
                    ep.name,
                    since=plan.step_started,
                    cipher=cipher,
                    columns=_STAT_COLUMNS,
                )
                action, reason, evidence = decide(ep.policy, window_stats(table), at)
                service.apply_canary_step(ep.name, ep.version, action, evidence, reason)
                done.append((ep.name, action, reason))
            except Exception:  # one endpoint's trouble must not stop the others
                log.exception("canary controller: endpoint %s", ep.name)
        return done

    def start(self) -> None:
        """Run passes every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
