"""Endpoints and their traffic policies: deploy, A/B, shadow, canary, promote, roll back.

Every change writes a new version of the endpoint's policy (compare-and-set on the version, so
concurrent deployers and the canary controller never overwrite each other), a decision row with
its evidence and an audit event, in one transaction. The registry follows: the version that
serves 100 % of an endpoint becomes ``production`` and the one it replaced ``deprecated``.

Rules
    * Live traffic (the primary, A/B variants, a canary) only goes to versions in status
      ``approved``, ``production`` or ``deprecated`` (a rollback target), and, when the model's
      approval policy is on, with a four-eyes approval bound to the version's package
      (:func:`dockyard.registry.service.production_approval`). Any version that is not rejected
      or retired may be a shadow: it never answers a caller.
    * ``last_good_version`` is the rollback target: the policy in force before the current
      change (before the whole canary, while one runs or after it was promoted). ``rollback``
      restores it as a new version.
    * Permissions: ``endpoint:deploy`` on the endpoint for every change, ``endpoint:read`` to
      look; resolving the model reference needs ``model:read``.

No FastAPI or Typer; the inference server reads policies from the store directly.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from dockyard.core.registry_entities import APPROVED, DEPRECATED, PRODUCTION, REJECTED, RETIRED
from dockyard.core.serving_entities import (
    CanaryPlan,
    Decision,
    Endpoint,
    Gate,
    ModelRef,
    TrafficPolicy,
    check_endpoint_name,
    check_variant_name,
    parse_duration,
    parse_steps,
)
from dockyard.governance.audit import Actor, now_ms, record_event
from dockyard.governance.permissions import ENDPOINT_DEPLOY, ENDPOINT_READ, Authorizer, enforced

if TYPE_CHECKING:
    from dockyard.artifacts import ArtifactStore
    from dockyard.store.base import Store

__all__ = ["LIVE_STATUSES", "MODES", "SERVING_PERMISSIONS", "EndpointService", "split_weights"]

#: Registry statuses whose versions may take live traffic.
LIVE_STATUSES = frozenset({APPROVED, PRODUCTION, DEPRECATED})
#: How ``deploy`` adds a version to an endpoint.
MODES = ("replace", "ab", "shadow", "canary")
_MAX_REASON = 2000

SERVING_PERMISSIONS: Mapping[str, str] = {
    "deploy": ENDPOINT_DEPLOY,
    "set_weights": ENDPOINT_DEPLOY,
    "remove_variant": ENDPOINT_DEPLOY,
    "promote": ENDPOINT_DEPLOY,
    "rollback": ENDPOINT_DEPLOY,
    "delete_endpoint": ENDPOINT_DEPLOY,
    "apply_canary_step": ENDPOINT_DEPLOY,
    "get_endpoint": ENDPOINT_READ,
    "list_endpoints": ENDPOINT_READ,
    "policy_history": ENDPOINT_READ,
    "list_decisions": ENDPOINT_READ,
}


def split_weights(current: Mapping[str, int], new: str, weight: int) -> dict[str, int]:
    """Give ``new`` ``weight`` percent and scale the others to share the rest in proportion
    (largest remainders, so the integers still sum to 100)."""
    rest = 100 - weight
    total = sum(current.values())
    if total == 0:
        raise InvalidInput("the endpoint's live variants all have weight 0")
    exact = {k: v * rest / total for k, v in current.items()}
    out = {k: int(x) for k, x in exact.items()}
    short = rest - sum(out.values())
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[:short]:
        out[k] += 1
    out[new] = weight
    return out


def _reason(reason: Any) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str) or len(reason) > _MAX_REASON or "\x00" in reason:
        raise InvalidInput(f"reason must be text of at most {_MAX_REASON} characters")
    return reason.strip()


def _variant_name(ref: ModelRef) -> str:
    return check_variant_name(f"{ref.model}-{ref.version}"[:64])


@enforced(SERVING_PERMISSIONS)
class EndpointService:
    """Endpoints on behalf of ``actor``."""

    def __init__(self, store: Store, artifacts: ArtifactStore, actor: Actor) -> None:
        from dockyard.registry.service import RegistryService

        self.store = store
        self.actor = actor
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)
        self._registry = RegistryService(store, artifacts, Actor(actor.name, self.authz))

    # -- reads ---------------------------------------------------------------------------------

    def get_endpoint(self, name: str) -> Endpoint:
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_READ, name)
        ep = self.store.read(lambda u: u.get_endpoint(name))
        if ep is None:
            raise self._no_endpoint(name)
        return ep  # type: ignore[no-any-return]

    def list_endpoints(self) -> list[Endpoint]:
        """The endpoints the caller may read, by name."""
        eps = self.store.read(lambda u: u.list_endpoints())
        return [e for e in eps if self.authz.allows(ENDPOINT_READ, e.name)]

    def policy_history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """Past policy versions, newest first: version, created, by, reason, policy."""
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_READ, name)
        rows = self.store.read(lambda u: u.list_endpoint_policies(name, _limit(limit)))
        if not rows:
            raise self._no_endpoint(name)
        return [
            {
                "version": int(r.version),
                "created": int(r.created),
                "created_by": r.created_by,
                "reason": r.reason,
                "policy": dict(r.policy),
            }
            for r in rows
        ]

    def list_decisions(self, name: str, limit: int = 50) -> list[Decision]:
        """Decisions on the endpoint, newest first, each with its evidence."""
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_READ, name)
        self.get_endpoint(name)
        return self.store.read(lambda u: u.list_decisions(name, _limit(limit)))  # type: ignore[no-any-return]

    # -- deploy --------------------------------------------------------------------------------

    def deploy(
        self,
        name: str,
        model: str | ModelRef,
        *,
        mode: str = "replace",
        weight: int | None = None,
        variant: str | None = None,
        steps: Sequence[int] | str | None = None,
        bake: float | str | None = None,
        min_requests: int | None = None,
        gates: Sequence[str | Gate] | None = None,
        description: str = "",
        reason: str | None = None,
        key_field: str | None = None,
    ) -> Endpoint:
        """Put a model version on endpoint ``name`` (created on the first ``replace``).

        ``mode``: ``replace`` (it takes 100 % of live traffic; shadows stay), ``ab`` (a new
        variant with ``weight`` percent, the others scaled down in proportion), ``shadow``
        (a copy of every request, never answering), ``canary`` (a new variant moved through
        ``steps`` with ``bake`` time and ``min_requests`` per step while every gate holds;
        see :class:`~dockyard.core.serving_entities.CanaryPlan`). ``model`` is ``fraud/5``,
        ``fraud@champion``, ``models:/fraud/5`` or a :class:`ModelRef`.
        """
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_DEPLOY, name)
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        why = _reason(reason)
        if (
            not isinstance(description, str)
            or len(description) > _MAX_REASON
            or "\x00" in description
        ):
            raise InvalidInput(f"description must be text of at most {_MAX_REASON} characters")
        ref = self._resolve(model)
        vname = check_variant_name(variant) if variant is not None else _variant_name(ref)
        if mode == "ab":
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight < 100:
                raise InvalidInput(
                    f"an A/B variant needs a weight: a whole percent 0..99, got {weight!r}"
                )
        elif weight is not None:
            raise InvalidInput(f"weight only applies to mode 'ab', not {mode!r}")
        canary_args = (steps, bake, min_requests, gates)
        if mode != "canary" and any(a is not None for a in canary_args):
            raise InvalidInput("steps, bake, min_requests and gates only apply to mode 'canary'")
        now = now_ms()
        plan = None
        if mode == "canary":
            plan = CanaryPlan(
                variant=vname,
                steps=parse_steps(steps) if steps is not None else (5, 25, 50, 100),
                bake_seconds=parse_duration(bake) if bake is not None else 600.0,
                min_requests=100 if min_requests is None else min_requests,
                gates=tuple(Gate.parse(g) for g in gates)
                if gates is not None
                else (Gate("error_rate", "<", 0.01),),
                step=0,
                step_started=now,
            )

        def fn(u: Any) -> Endpoint:
            from dockyard.registry.service import production_approval

            status = u.model_version_status(ref.model, ref.version)
            if status is None:
                raise NotFound(f"model {ref.model!r} has no version {ref.version}")
            if mode == "shadow":
                if status in (REJECTED, RETIRED):
                    raise Conflict(
                        f"version {ref} is {status}; it cannot be deployed, even as a shadow"
                    )
            else:
                if status not in LIVE_STATUSES:
                    raise Conflict(
                        f"version {ref} is {status}; only approved or production versions take "
                        "live traffic (approve it first, or deploy it as a shadow: it then sees "
                        "a copy of the traffic and never answers)",
                        status=status,
                    )
                production_approval(u, ref.model, ref.version)
            cur = u.get_endpoint(name, for_update=True)
            if cur is None:
                if mode != "replace":
                    raise NotFound(
                        f"endpoint {name!r} does not exist; create it with a first deploy "
                        f"(mode 'replace'), then add {mode} variants"
                    )
                policy = TrafficPolicy.single(ref, salt=secrets.token_hex(8), variant=vname)
                if key_field is not None:
                    policy = replace(policy, key_field=key_field)
                if not u.insert_endpoint(
                    name, description, policy, now=now, by=self.actor.name, reason=why or "deploy"
                ):
                    raise AlreadyExists(f"endpoint {name!r} was created concurrently; retry")
                self._follow_registry(u, None, policy, f"serving 100 % of endpoint {name}")
                self._decide(u, name, "deploy", why, None, 1, {"mode": mode, "model": str(ref)})
                ep = u.get_endpoint(name)
                assert ep is not None
                return ep  # type: ignore[no-any-return]
            old = cur.policy
            if vname in old.refs() and old.refs()[vname] != ref:
                raise Conflict(
                    f"endpoint {name!r} already has a variant {vname!r} ({old.refs()[vname]}); "
                    "choose another name with variant=..."
                )
            if mode != "replace" and old.canary is not None:
                raise Conflict(
                    f"a canary of {old.variants[old.canary.variant]} is running on {name!r}; "
                    "promote it or roll it back first"
                )
            new = self._changed(old, mode, vname, ref, weight, plan, key_field)
            last_good = cur.version
            ep = self._commit(
                u,
                cur,
                new,
                stored_reason=why or f"deploy {mode} {ref}",
                action="deploy" if mode == "replace" else mode,
                why=why,
                evidence={"mode": mode, "model": str(ref), "weights": dict(new.weights)},
                registry_why=f"serving 100 % of endpoint {name}",
                last_good=last_good,
            )
            if ep is None:
                raise self._raced(name)
            return ep

        return self.store.write(fn)  # type: ignore[no-any-return]

    @staticmethod
    def _changed(
        old: TrafficPolicy,
        mode: str,
        vname: str,
        ref: ModelRef,
        weight: int | None,
        plan: CanaryPlan | None,
        key_field: str | None,
    ) -> TrafficPolicy:
        kf = key_field if key_field is not None else old.key_field
        shadows = {k: v for k, v in old.shadows.items() if v != ref or mode == "shadow"}
        if mode == "replace":
            return TrafficPolicy(
                primary=vname,
                variants={vname: ref},
                weights={vname: 100},
                shadows={k: v for k, v in shadows.items() if k != vname},
                salt=old.salt,
                key_field=kf,
            )
        if mode == "shadow":
            if vname in old.variants:
                raise Conflict(f"{vname!r} is a live variant of this endpoint, not a shadow")
            return replace(old, shadows={**old.shadows, vname: ref}, key_field=kf)
        if vname in old.variants:
            raise Conflict(f"{vname!r} is already a live variant of this endpoint")
        if mode == "ab":
            assert weight is not None
            return replace(
                old,
                variants={**old.variants, vname: ref},
                weights=split_weights(old.weights, vname, weight),
                shadows=shadows,
                key_field=kf,
            )
        assert plan is not None
        live = [k for k, w in old.weights.items() if w > 0]
        if live != [old.primary]:
            raise Conflict(
                "a canary starts from a policy where the primary takes all live traffic; "
                f"finish the A/B test first (live now: {', '.join(live)})"
            )
        return TrafficPolicy(
            primary=old.primary,
            variants={old.primary: old.primary_ref, vname: ref},
            weights={old.primary: 100 - plan.percent, vname: plan.percent},
            shadows=shadows,
            canary=plan,
            salt=old.salt,
            key_field=kf,
        )

    # -- later changes -------------------------------------------------------------------------

    def set_weights(
        self, name: str, weights: Mapping[str, int], reason: str | None = None
    ) -> Endpoint:
        """Set the live variants' weights (every live variant named, summing to 100)."""
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_DEPLOY, name)
        why = _reason(reason)

        def change(cur: Endpoint) -> tuple[TrafficPolicy, str, dict[str, Any]]:
            if cur.policy.canary is not None:
                raise Conflict("a canary is running: its controller sets the weights")
            new = cur.policy.with_weights({k: v for k, v in weights.items()})
            return new, "weights", {"weights": dict(new.weights)}

        return self._change(name, change, why or "set weights")

    def remove_variant(self, name: str, variant: str, reason: str | None = None) -> Endpoint:
        """Take a shadow, or a live variant other than the primary, off the endpoint (its
        weight goes to the others in proportion)."""
        check_endpoint_name(name)
        check_variant_name(variant)
        self.authz.require(ENDPOINT_DEPLOY, name)
        why = _reason(reason)

        def change(cur: Endpoint) -> tuple[TrafficPolicy, str, dict[str, Any]]:
            p = cur.policy
            if variant in p.shadows:
                shadows = {k: v for k, v in p.shadows.items() if k != variant}
                return replace(p, shadows=shadows), "remove", {"variant": variant}
            if variant not in p.variants:
                raise NotFound(f"endpoint {name!r} has no variant {variant!r}")
            if variant == p.primary:
                raise Conflict(
                    f"{variant!r} is the primary; promote another variant or deploy a "
                    "replacement instead"
                )
            if p.canary is not None and p.canary.variant == variant:
                raise Conflict(f"{variant!r} is a running canary; roll it back instead")
            rest = {k: w for k, w in p.weights.items() if k != variant}
            weights = split_weights(rest, variant, 0)
            del weights[variant]
            variants = {k: v for k, v in p.variants.items() if k != variant}
            new = replace(p, variants=variants, weights=weights)
            return new, "remove", {"variant": variant, "weights": weights}

        return self._change(name, change, why or f"remove {variant}")

    def promote(self, name: str, variant: str | None = None, reason: str | None = None) -> Endpoint:
        """Make a live variant (default: the running canary, or the only other live variant)
        the primary at 100 %; the registry follows (production / deprecated)."""
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_DEPLOY, name)
        why = _reason(reason)

        def change(cur: Endpoint) -> tuple[TrafficPolicy, str, dict[str, Any]]:
            p = cur.policy
            target = variant
            if target is None:
                if p.canary is not None:
                    target = p.canary.variant
                else:
                    others = [k for k in p.variants if k != p.primary]
                    if len(others) != 1:
                        raise InvalidInput(
                            f"name the variant to promote; live variants: {', '.join(p.variants)}"
                        )
                    target = others[0]
            if target not in p.variants:
                raise NotFound(f"endpoint {name!r} has no live variant {target!r}")
            return _promoted(p, target), "promote", {"variant": target}

        return self._change(name, change, why or "promote", keep_last_good_if_canary=True)

    def rollback(self, name: str, reason: str | None = None) -> Endpoint:
        """Restore the last good policy (the one before the current change) as a new version."""
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_DEPLOY, name)
        return self._rollback(name, _reason(reason) or "manual rollback", {})

    def _rollback(self, name: str, why: str, evidence: Mapping[str, Any]) -> Endpoint:
        def fn(u: Any) -> Endpoint:
            cur = u.get_endpoint(name, for_update=True)
            if cur is None:
                raise self._no_endpoint(name)
            if cur.last_good_version is None:
                raise Conflict(f"endpoint {name!r} has no earlier policy to roll back to")
            found = u.get_endpoint_policy(name, cur.last_good_version)
            assert found is not None
            target = replace(found[0], canary=None)
            if (
                target.to_dict() == replace(cur.policy, canary=None).to_dict()
                and cur.policy.canary is None
            ):
                raise Conflict(
                    f"endpoint {name!r} already runs its last good policy "
                    f"(version {cur.last_good_version})"
                )
            ep = self._commit(
                u,
                cur,
                target,
                stored_reason=f"rollback to version {cur.last_good_version}: {why}",
                action="rollback",
                why=why,
                evidence={**evidence, "restored_version": cur.last_good_version},
                registry_why=f"rollback of endpoint {name}",
                last_good=cur.last_good_version,
            )
            if ep is None:
                raise self._raced(name)
            return ep

        return self.store.write(fn)  # type: ignore[no-any-return]

    def apply_canary_step(
        self,
        name: str,
        expected_version: int,
        action: str,
        evidence: Mapping[str, Any],
        reason: str,
    ) -> Endpoint | None:
        """What the canary controller calls with its decision for the policy version it looked
        at: ``advance`` (next step), ``promote`` (the canary becomes the primary), ``rollback``
        or ``hold`` (recorded only when the reason changed). Returns None when the policy moved
        on meanwhile (another replica or a person acted first): nothing is done then."""
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_DEPLOY, name)
        if action not in ("advance", "promote", "rollback", "hold"):
            raise InvalidInput(f"unknown canary action {action!r}")
        if action == "rollback":
            cur = self.store.read(lambda u: u.get_endpoint(name))
            if cur is None or cur.version != expected_version or cur.policy.canary is None:
                return None
            return self._rollback(name, reason, evidence)

        def fn(u: Any) -> Endpoint | None:
            cur = u.get_endpoint(name, for_update=True)
            if cur is None or cur.version != expected_version or cur.policy.canary is None:
                return None
            p, plan = cur.policy, cur.policy.canary
            now = now_ms()
            if action == "hold":
                last = u.list_decisions(name, 1)
                if not (last and last[0].action == "hold" and last[0].reason == reason):
                    self._decide(u, name, "hold", reason, cur.version, cur.version, dict(evidence))
                return cur  # type: ignore[no-any-return]
            if action == "advance":
                step = plan.step + 1
                nxt = replace(plan, step=step, step_started=now)
                new = replace(
                    p,
                    canary=nxt,
                    weights={p.primary: 100 - nxt.percent, plan.variant: nxt.percent},
                )
            else:
                new = _promoted(p, plan.variant)
            return self._commit(
                u,
                cur,
                new,
                stored_reason=f"canary {action}: {reason}",
                action=action,
                why=reason,
                evidence=dict(evidence),
                registry_why=f"canary of endpoint {name} promoted",
            )

        return self.store.write(fn)  # type: ignore[no-any-return]

    def delete_endpoint(self, name: str, reason: str | None = None) -> None:
        """Remove the endpoint and its policy history (the audit log keeps the record)."""
        check_endpoint_name(name)
        self.authz.require(ENDPOINT_DEPLOY, name)
        why = _reason(reason)

        def fn(u: Any) -> None:
            cur = u.get_endpoint(name, for_update=True)
            if cur is None or not u.delete_endpoint(name):
                raise self._no_endpoint(name)
            record_event(
                u,
                self.actor,
                "endpoint.delete",
                "endpoint",
                name,
                version=cur.version,
                policy=cur.policy.describe(),
                reason=why,
            )

        self.store.write(fn)

    # -- helpers -------------------------------------------------------------------------------

    def _change(
        self,
        name: str,
        change: Any,
        why: str,
        *,
        keep_last_good_if_canary: bool = False,
    ) -> Endpoint:
        def fn(u: Any) -> Endpoint:
            from dockyard.registry.service import production_approval

            cur = u.get_endpoint(name, for_update=True)
            if cur is None:
                raise self._no_endpoint(name)
            new, action, evidence = change(cur)
            for ref in new.live_refs() - cur.policy.live_refs():
                production_approval(u, ref.model, ref.version)
            last_good = cur.version
            if keep_last_good_if_canary and cur.policy.canary is not None:
                last_good = cur.last_good_version
            ep = self._commit(
                u,
                cur,
                new,
                stored_reason=why,
                action=action,
                why=why,
                evidence=evidence,
                registry_why=f"serving 100 % of endpoint {name}",
                last_good=last_good,
            )
            if ep is None:
                raise self._raced(name)
            return ep

        return self.store.write(fn)  # type: ignore[no-any-return]

    def _commit(
        self,
        u: Any,
        cur: Endpoint,
        new: TrafficPolicy,
        *,
        stored_reason: str,
        action: str,
        why: str,
        evidence: dict[str, Any],
        registry_why: str,
        last_good: int | bool | None = False,
    ) -> Endpoint | None:
        """Inside a transaction: make ``new`` the endpoint's policy (compare-and-set on
        ``cur.version``), let the registry follow, record the decision and the audit event;
        the endpoint as it now is, or None when someone changed the policy first.
        ``last_good`` (unless False) becomes the rollback target."""
        version = u.put_endpoint_policy(
            cur.name,
            cur.version,
            new,
            now=now_ms(),
            by=self.actor.name,
            reason=stored_reason,
            last_good_version=last_good,
        )
        if version is None:
            return None
        self._follow_registry(u, cur.policy, new, registry_why)
        self._decide(u, cur.name, action, why, cur.version, version, evidence)
        ep = u.get_endpoint(cur.name)
        assert ep is not None
        return ep  # type: ignore[no-any-return]

    def _follow_registry(
        self, u: Any, old: TrafficPolicy | None, new: TrafficPolicy, why: str
    ) -> None:
        """The version at 100 % is production; a primary that left the live set, deprecated."""
        from dockyard.registry.service import record_serving_status

        if new.weights[new.primary] == 100:
            ref = new.primary_ref
            record_serving_status(u, self.actor, ref.model, ref.version, PRODUCTION, why)
        if old is not None and old.primary_ref not in new.live_refs():
            ref = old.primary_ref
            if u.model_version_status(ref.model, ref.version) == PRODUCTION:
                record_serving_status(
                    u, self.actor, ref.model, ref.version, DEPRECATED, f"replaced: {why}"
                )

    def _decide(
        self,
        u: Any,
        name: str,
        action: str,
        why: str,
        from_version: int | None,
        to_version: int | None,
        evidence: dict[str, Any],
    ) -> None:
        u.insert_decision(
            name,
            now=now_ms(),
            actor=self.actor.name,
            action=action,
            reason=why,
            from_version=from_version,
            to_version=to_version,
            evidence=evidence,
        )
        record_event(
            u,
            self.actor,
            f"endpoint.{action}",
            "endpoint",
            name,
            from_version=from_version,
            to_version=to_version,
            reason=why,
            **{k: v for k, v in evidence.items() if k in ("mode", "model", "weights", "variant")},
        )

    def _resolve(self, model: str | ModelRef) -> ModelRef:
        if isinstance(model, ModelRef):
            return model
        if not isinstance(model, str) or not model:
            raise InvalidInput(f"model must be like fraud/5 or fraud@champion, got {model!r}")
        mv = self._registry.resolve(model)
        return ModelRef(mv.name, mv.version)

    @staticmethod
    def _no_endpoint(name: str) -> NotFound:
        return NotFound(f"endpoint {name!r} does not exist", endpoint=name)

    @staticmethod
    def _raced(name: str) -> Conflict:
        return Conflict(
            f"the policy of endpoint {name!r} changed while this change was being made; "
            "look at it again (dockyard endpoints show) and retry"
        )


def _promoted(p: TrafficPolicy, target: str) -> TrafficPolicy:
    ref = p.variants[target]
    return TrafficPolicy(
        primary=target,
        variants={target: ref},
        weights={target: 100},
        shadows=p.shadows,
        salt=p.salt,
        key_field=p.key_field,
    )


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be 1..1000, got {limit!r}")
    return limit
