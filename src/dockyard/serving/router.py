"""Sticky assignment of requests to an endpoint's live variants.

A request's *key* (header ``X-Dockyard-Key``, or the policy's ``key_field`` in a JSON body)
is hashed with the policy's salt into one of 10,000 buckets::

    bucket = int(sha256(salt + ":" + key).hexdigest(), 16) % 10000

and the bucket is compared with the cumulative weights (percent x 100) of the live variants in
a fixed order (sorted by name, weight-0 variants skipped): the same key always lands on the
same variant while the weights stand, and a weight change moves only the keys whose bucket
crosses a boundary. A request without a key is assigned at random by weight. A variant named by
the debug header ``X-Dockyard-Variant`` (live or at weight 0) is forced; such a request is
marked ``forced`` and the experiment metrics leave it out.

Standard library only; no I/O.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import InvalidInput
from dockyard.core.serving_entities import TrafficPolicy

__all__ = ["BUCKETS", "Assignment", "Router", "bucket_of", "find_key", "key_hash"]

#: Buckets of the sticky assignment (a weight of 1 % is 100 buckets).
BUCKETS = 10_000
MAX_KEY_CHARS = 512


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def bucket_of(salt: str, key: str) -> int:
    """The key's bucket, 0..9999."""
    return int(_digest(salt, key), 16) % BUCKETS


def key_hash(salt: str, key: str | None) -> str | None:
    """What the prediction log keeps of a key: a salted hash, never the key."""
    return None if key is None else _digest(salt, key)[:32]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a request goes: the variant, whether a header forced it, its key's hash."""

    variant: str
    forced: bool = False
    key_hash: str | None = None


class Router:
    """The assignment rule of one policy (immutable; build a new one per policy version)."""

    def __init__(self, policy: TrafficPolicy) -> None:
        self.policy = policy
        self.salt = policy.salt
        order = sorted(name for name, w in policy.weights.items() if w > 0)
        cum, bounds = 0, []
        for name in order:
            cum += int(policy.weights[name]) * (BUCKETS // 100)
            bounds.append((cum, name))
        self._bounds: tuple[tuple[int, str], ...] = tuple(bounds)
        self._total = cum
        self._rng = random.Random()

    def variant_for_bucket(self, bucket: int) -> str:
        for bound, name in self._bounds:
            if bucket < bound:
                return name
        return self._bounds[-1][1]  # unreachable while the weights sum to 100

    def assign(self, key: str | None = None, forced: str | None = None) -> Assignment:
        """The variant for a request with ``key`` (None: random by weight); ``forced`` (the
        debug header) must name a variant of the policy, live or at weight 0."""
        kh = key_hash(self.salt, key)
        if forced is not None:
            if forced not in self.policy.variants:
                names = ", ".join(sorted(self.policy.variants))
                raise InvalidInput(
                    f"header X-Dockyard-Variant names {forced[:64]!r}, which is not a variant of "
                    f"this endpoint (variants: {names}; shadows cannot be forced)",
                    field="X-Dockyard-Variant",
                )
            return Assignment(forced, True, kh)
        if key is None:
            return Assignment(self.variant_for_bucket(self._rng.randrange(self._total)), False)
        return Assignment(self.variant_for_bucket(bucket_of(self.salt, key)), False, kh)


def _scalar_key(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list | tuple):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)[:MAX_KEY_CHARS]


def find_key(body: Any, key_field: str | None) -> str | None:
    """The assignment key in a parsed JSON body: the top-level ``key_field`` (a dotted path
    also works), else the field of the first record / row of the payload; None when absent."""
    if not key_field:
        return None
    if isinstance(body, Mapping):
        if key_field in body:
            return _scalar_key(body[key_field])
        node: Any = body
        for part in key_field.split("."):
            if not isinstance(node, Mapping) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None:
            return _scalar_key(node)
        for name in ("dataframe_records", "instances", "records", "inputs"):
            inner = body.get(name)
            if isinstance(inner, list) and inner and isinstance(inner[0], Mapping):
                return _scalar_key(inner[0].get(key_field))
            if isinstance(inner, Mapping) and key_field in inner:
                col = inner[key_field]
                return _scalar_key(col[0] if isinstance(col, list) and col else col)
        split = body.get("dataframe_split")
        if isinstance(split, Mapping):
            cols, data = split.get("columns"), split.get("data")
            if isinstance(cols, list) and key_field in cols and isinstance(data, list) and data:
                row = data[0]
                i = cols.index(key_field)
                if isinstance(row, list) and i < len(row):
                    return _scalar_key(row[i])
        cols = body.get("columns")
        if isinstance(cols, Mapping) and key_field in cols:
            col = cols[key_field]
            return _scalar_key(col[0] if isinstance(col, list) and col else col)
        return None
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        return _scalar_key(body[0].get(key_field))
    return None
