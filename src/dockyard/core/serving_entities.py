"""What an endpoint is: a stable name over a traffic policy, and the rollout's decisions.

A :class:`TrafficPolicy` says which model versions answer an endpoint's live traffic and in
what shares, which ones see a copy of it (shadows), and how a canary moves:

* ``variants``: live variants, each a name -> :class:`ModelRef`; ``weights`` their shares
  in percent (integers summing to 100). ``primary`` names the stable one. A variant at weight 0
  is deployed but dark (loaded, reachable with the override header, given no traffic).
* ``shadows``: name -> :class:`ModelRef`; each gets a copy of every request, asynchronously;
  its answer is logged and compared, never returned.
* ``canary``: a :class:`CanaryPlan` (steps in percent, bake time and minimum requests per step,
  gates) and where it stands (``step``, ``step_started``). At each step the canary variant has
  ``steps[step]`` percent and the primary the rest; the controller moves it on when every gate
  holds over the step's window, makes it the primary at 100 %, or rolls back.
* ``salt``: the sticky-assignment salt; a request's key (header ``X-Dockyard-Key`` or the
  ``key_field`` of a JSON body) hashed with it picks the same variant every time.

Policies are immutable values; every change is a new version of the endpoint's policy in the
store (history, rollback), written by :class:`dockyard.serving.service.EndpointService`.
Import-light: standard library only.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dockyard.core.errors import InvalidInput

__all__ = [
    "GATE_METRICS",
    "CanaryPlan",
    "Decision",
    "Endpoint",
    "Gate",
    "ModelRef",
    "TrafficPolicy",
    "check_endpoint_name",
    "check_variant_name",
    "parse_duration",
    "parse_steps",
]

_ENDPOINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")

#: What a gate can look at, per variant over the step's window (from the prediction log):
#: the share of requests that failed (5xx) and latency percentiles in ms. Quality gates
#: (accuracy from logged labels, shadow agreement) come with the monitoring layer; until the
#: controller computes them they are refused here rather than holding a canary forever.
GATE_METRICS: tuple[str, ...] = ("error_rate", "p50_ms", "p95_ms", "p99_ms")


def check_endpoint_name(name: Any) -> str:
    """An endpoint name: 1 to 128 letters, digits or ``. _ -``, starting with a letter or digit
    (it is a URL segment and a folder name of the prediction log)."""
    if not isinstance(name, str) or not _ENDPOINT.match(name):
        raise InvalidInput(
            "endpoint name must be 1 to 128 letters, digits or . _ - (starting with a letter or "
            f"digit), got {name!r}"
        )
    return name


def check_variant_name(name: Any) -> str:
    if not isinstance(name, str) or not _VARIANT.match(name):
        raise InvalidInput(
            "variant name must be 1 to 64 letters, digits or . _ - (starting with a letter or "
            f"digit), got {name!r}"
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    """One registered model version: ``fraud/5``."""

    model: str
    version: int

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not _MODEL.match(self.model):
            raise InvalidInput(f"bad model name {self.model!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise InvalidInput(f"model version must be an integer, got {self.version!r}")
        if self.version < 1:
            raise InvalidInput(f"model version must be 1 or more, got {self.version}")

    def __str__(self) -> str:
        return f"{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelRef:
        return cls(str(d["model"]), int(d["version"]))


_GATE = re.compile(
    r"^\s*(?P<metric>[a-z0-9_]+)\s*(?P<op><=|>=|<|>)\s*"
    r"(?:(?P<rel>primary)\s*(?:(?P<relop>[+*])\s*(?P<relnum>[0-9.eE+-]+))?|(?P<num>[0-9.eE+-]+))"
    r"\s*$"
)


@dataclass(frozen=True)
class Gate:
    """A condition the canary must meet over a step's window.

    ``error_rate<0.01`` (absolute), ``p99_ms<=primary*1.2`` or ``error_rate<=primary+0.005``
    (relative to the primary on the same window). ``relative`` is ``None`` for an absolute
    gate, else ``"*"`` or ``"+"`` with ``threshold`` the factor or the margin.
    """

    metric: str
    op: str
    threshold: float
    relative: str | None = None

    def __post_init__(self) -> None:
        if self.metric not in GATE_METRICS:
            raise InvalidInput(
                f"gate metric {self.metric!r} is not one of {', '.join(GATE_METRICS)}"
            )
        if self.op not in ("<", "<=", ">", ">="):
            raise InvalidInput(f"gate operator {self.op!r} is not one of < <= > >=")
        if self.relative not in (None, "*", "+"):
            raise InvalidInput(f"gate relation {self.relative!r} is not * or +")
        if not math.isfinite(self.threshold):
            raise InvalidInput(f"gate threshold must be a finite number, got {self.threshold}")

    @classmethod
    def parse(cls, text: Any) -> Gate:
        """``metric<op>number`` or ``metric<op>primary[*factor|+margin]``."""
        if isinstance(text, Gate):
            return text
        if isinstance(text, Mapping):
            try:
                threshold = float(text.get("threshold", "nan"))
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"gate {dict(text)!r} has a threshold that is not a number"
                ) from None
            return cls(
                str(text.get("metric")), str(text.get("op")), threshold, text.get("relative")
            )
        m = _GATE.match(text) if isinstance(text, str) else None
        if m is None:
            raise InvalidInput(
                f"gate {text!r} is not of the form metric<op>number or metric<op>primary*factor "
                "(e.g. 'error_rate<0.01', 'p99_ms<50', 'p99_ms<=primary*1.2'); metrics: "
                + ", ".join(GATE_METRICS)
            )
        try:
            if m["rel"]:
                relop = m["relop"] or "*"
                number = float(m["relnum"]) if m["relnum"] else 1.0
                return cls(m["metric"], m["op"], number, relop)
            return cls(m["metric"], m["op"], float(m["num"]))
        except ValueError:
            raise InvalidInput(f"gate {text!r} has a threshold that is not a number") from None

    def bound(self, primary_value: float | None) -> float | None:
        """The number the canary's value is compared with (None: no primary value yet)."""
        if self.relative is None:
            return self.threshold
        if primary_value is None:
            return None
        if self.relative == "*":
            return primary_value * self.threshold
        return primary_value + self.threshold

    def holds(self, value: float, bound: float) -> bool:
        return {
            "<": value < bound,
            "<=": value <= bound,
            ">": value > bound,
            ">=": value >= bound,
        }[self.op]

    def __str__(self) -> str:
        # repr: the shortest text that reads back as the same float (stored policies keep
        # gates as text, so a threshold must survive the round trip exactly).
        number = repr(float(self.threshold)).removesuffix(".0")
        if self.relative is None:
            return f"{self.metric}{self.op}{number}"
        return f"{self.metric}{self.op}primary{self.relative}{number}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_duration(text: Any) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``2h`` or ``1d``."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", str(text))
        if m is None:
            raise InvalidInput(f"duration {text!r} is not like 90s, 10m, 2h or 1d")
        seconds = float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
    if not math.isfinite(seconds) or seconds < 0 or seconds > 30 * 86400:
        raise InvalidInput(f"duration {text!r} must be between 0 and 30 days")
    return seconds


def parse_steps(text: Any) -> tuple[int, ...]:
    """Canary steps in percent: ``5,25,50,100`` -> (5, 25, 50, 100); increasing, ending at 100."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        steps = tuple(int(str(p).strip().rstrip("%")) for p in parts if str(p).strip())
    except ValueError:
        raise InvalidInput(
            f"canary steps {text!r} must be whole percents like 5,25,50,100"
        ) from None
    if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps):
        raise InvalidInput(f"canary steps {text!r} must be percents in 1..100 ending at 100")
    if any(a >= b for a, b in itertools.pairwise(steps)):
        raise InvalidInput(f"canary steps {text!r} must increase")
    return steps


@dataclass(frozen=True)
class CanaryPlan:
    """How a canary moves: steps (percent of live traffic), bake time and minimum requests per
    step, and the gates that must hold over each step's window; where it stands now."""

    variant: str
    steps: tuple[int, ...] = (5, 25, 50, 100)
    bake_seconds: float = 600.0
    min_requests: int = 100
    gates: tuple[Gate, ...] = (Gate("error_rate", "<", 0.01),)
    step: int = 0
    step_started: int = 0  # epoch ms

    def __post_init__(self) -> None:
        check_variant_name(self.variant)
        object.__setattr__(self, "steps", parse_steps(self.steps))
        object.__setattr__(self, "bake_seconds", parse_duration(self.bake_seconds))
        object.__setattr__(self, "gates", tuple(Gate.parse(g) for g in self.gates))
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int):
            raise InvalidInput(f"min_requests must be an integer, got {self.min_requests!r}")
        if not 0 <= self.min_requests <= 10_000_000:
            raise InvalidInput("min_requests must be between 0 and 10,000,000")
        if not 0 <= self.step < len(self.steps):
            raise InvalidInput(f"canary step {self.step} is not one of its {len(self.steps)}")

    @property
    def percent(self) -> int:
        return self.steps[self.step]

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "steps": list(self.steps),
            "bake_seconds": self.bake_seconds,
            "min_requests": self.min_requests,
            "gates": [str(g) for g in self.gates],
            "step": self.step,
            "step_started": self.step_started,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CanaryPlan:
        return cls(
            variant=d["variant"],
            steps=tuple(d["steps"]),
            bake_seconds=d["bake_seconds"],
            min_requests=d["min_requests"],
            gates=tuple(Gate.parse(g) for g in d["gates"]),
            step=d.get("step", 0),
            step_started=d.get("step_started", 0),
        )


@dataclass(frozen=True)
class TrafficPolicy:
    """Who answers an endpoint's traffic, in what shares, who shadows it, how a canary moves."""

    primary: str
    variants: Mapping[str, ModelRef]
    weights: Mapping[str, int]
    shadows: Mapping[str, ModelRef] = field(default_factory=dict)
    canary: CanaryPlan | None = None
    salt: str = ""
    key_field: str | None = None

    def __post_init__(self) -> None:
        for name in [*self.variants, *self.shadows]:
            check_variant_name(name)
        overlap = set(self.variants) & set(self.shadows)
        if overlap:
            raise InvalidInput(f"variant names {sorted(overlap)} are both live and shadow")
        if self.primary not in self.variants:
            raise InvalidInput(f"the primary {self.primary!r} is not one of the live variants")
        if set(self.weights) != set(self.variants):
            raise InvalidInput(
                f"weights {dict(self.weights)} must name exactly the live variants "
                f"{sorted(self.variants)}"
            )
        for name, w in self.weights.items():
            if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
                raise InvalidInput(f"weight of {name!r} must be a whole percent 0..100, got {w!r}")
        if sum(self.weights.values()) != 100:
            raise InvalidInput(
                f"weights must sum to 100, got {sum(self.weights.values())} ({dict(self.weights)})"
            )
        if self.canary is not None:
            if self.canary.variant not in self.variants or self.canary.variant == self.primary:
                raise InvalidInput(
                    f"the canary {self.canary.variant!r} must be a live variant other than the "
                    "primary"
                )
        if self.key_field is not None and not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_.-]{0,127}", self.key_field
        ):
            raise InvalidInput(f"key_field {self.key_field!r} is not a field name")

    # -- views -----------------------------------------------------------------------------

    @property
    def primary_ref(self) -> ModelRef:
        return self.variants[self.primary]

    def refs(self) -> dict[str, ModelRef]:
        """Every variant, live and shadow."""
        return {**self.variants, **self.shadows}

    def live_refs(self) -> set[ModelRef]:
        return {ref for name, ref in self.variants.items() if self.weights[name] > 0}

    def describe(self) -> str:
        parts = [
            f"{name}={self.variants[name]}:{w}%" + ("*" if name == self.primary else "")
            for name, w in sorted(self.weights.items(), key=lambda kv: -kv[1])
        ]
        parts += [f"shadow {name}={ref}" for name, ref in self.shadows.items()]
        if self.canary is not None:
            c = self.canary
            parts.append(f"canary step {c.step + 1}/{len(c.steps)} ({c.percent}%)")
        return ", ".join(parts)

    # -- changes (each returns a new policy) ---------------------------------------------------

    @classmethod
    def single(cls, ref: ModelRef, *, salt: str, variant: str = "primary") -> TrafficPolicy:
        return cls(primary=variant, variants={variant: ref}, weights={variant: 100}, salt=salt)

    def with_weights(self, weights: Mapping[str, int]) -> TrafficPolicy:
        return replace(self, weights=dict(weights))

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "variants": {k: v.to_dict() for k, v in self.variants.items()},
            "weights": dict(self.weights),
            "shadows": {k: v.to_dict() for k, v in self.shadows.items()},
            "canary": None if self.canary is None else self.canary.to_dict(),
            "salt": self.salt,
            "key_field": self.key_field,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrafficPolicy:
        return cls(
            primary=d["primary"],
            variants={k: ModelRef.from_dict(v) for k, v in d["variants"].items()},
            weights={k: int(v) for k, v in d["weights"].items()},
            shadows={k: ModelRef.from_dict(v) for k, v in (d.get("shadows") or {}).items()},
            canary=None if not d.get("canary") else CanaryPlan.from_dict(d["canary"]),
            salt=d.get("salt", ""),
            key_field=d.get("key_field"),
        )


@dataclass(frozen=True)
class Endpoint:
    """An endpoint and its current policy (``version`` counts the policy's changes)."""

    name: str
    description: str
    created: int
    created_by: str
    updated: int
    version: int
    policy: TrafficPolicy
    last_good_version: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "created": self.created,
            "created_by": self.created_by,
            "updated": self.updated,
            "version": self.version,
            "last_good_version": self.last_good_version,
            "reason": self.reason,
            "policy": self.policy.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Endpoint:
        return cls(
            name=d["name"],
            description=d.get("description") or "",
            created=int(d["created"]),
            created_by=d.get("created_by") or "",
            updated=int(d["updated"]),
            version=int(d["version"]),
            policy=TrafficPolicy.from_dict(d["policy"]),
            last_good_version=d.get("last_good_version"),
            reason=d.get("reason") or "",
        )


@dataclass(frozen=True)
class Decision:
    """One act on an endpoint's policy (deploy, a canary step, promote, rollback...), with the
    evidence it was taken on: the numbers the controller saw."""

    id: int
    endpoint: str
    time: int
    actor: str
    action: str
    reason: str
    from_version: int | None
    to_version: int | None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        return cls(
            id=int(d["id"]),
            endpoint=d["endpoint"],
            time=int(d["time"]),
            actor=d["actor"],
            action=d["action"],
            reason=d.get("reason") or "",
            from_version=d.get("from_version"),
            to_version=d.get("to_version"),
            evidence=dict(d.get("evidence") or {}),
        )
