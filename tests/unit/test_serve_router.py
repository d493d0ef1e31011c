"""Sticky assignment: the split, stability per key, forced variants, keys in bodies."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from dockyard.core.errors import InvalidInput
from dockyard.core.serving_entities import ModelRef, TrafficPolicy
from dockyard.serving.router import Router, bucket_of, find_key, key_hash


def _policy(weights: dict[str, int], salt: str = "s3cret") -> TrafficPolicy:
    variants = {n: ModelRef("m", i + 1) for i, n in enumerate(sorted(weights))}
    return TrafficPolicy(primary=sorted(weights)[0], variants=variants, weights=weights, salt=salt)


def test_the_bucket_is_sha256_of_salt_and_key_mod_10000() -> None:
    expected = int(hashlib.sha256(b"salt:user-42").hexdigest(), 16) % 10000
    assert bucket_of("salt", "user-42") == expected


@pytest.mark.parametrize("weights", [{"a": 70, "b": 30}, {"a": 50, "b": 25, "c": 25}])
def test_the_split_over_20000_keys_is_within_2_percent_and_stable(weights: dict[str, int]) -> None:
    router = Router(_policy(weights))
    keys = [f"user-{i}" for i in range(20_000)]
    first = [router.assign(k).variant for k in keys]
    counts = Counter(first)
    for name, w in weights.items():
        assert abs(counts[name] / len(keys) * 100 - w) <= 2.0, counts
    again = Router(_policy(weights))  # a new process builds the same table
    assert [again.assign(k).variant for k in keys] == first


def test_a_weight_change_moves_only_keys_across_a_boundary() -> None:
    keys = [f"k{i}" for i in range(5000)]
    before = Router(_policy({"a": 90, "b": 10}))
    after = Router(_policy({"a": 80, "b": 20}))
    moved = [k for k in keys if before.assign(k).variant != after.assign(k).variant]
    assert all(before.assign(k).variant == "a" and after.assign(k).variant == "b" for k in moved)
    assert 0.05 < len(moved) / len(keys) < 0.15


def test_another_salt_gives_another_assignment() -> None:
    keys = [f"k{i}" for i in range(2000)]
    a = [Router(_policy({"a": 50, "b": 50}, "one")).assign(k).variant for k in keys]
    b = [Router(_policy({"a": 50, "b": 50}, "two")).assign(k).variant for k in keys]
    assert a != b


def test_no_key_is_random_by_weight_and_zero_weight_gets_nothing() -> None:
    router = Router(_policy({"a": 80, "b": 20, "dark": 0}))
    got = Counter(router.assign().variant for _ in range(20_000))
    assert got["dark"] == 0
    assert abs(got["a"] / 20_000 - 0.8) < 0.03
    assert router.assign().key_hash is None and not router.assign().forced


def test_a_forced_variant_even_at_weight_0_is_marked_forced() -> None:
    router = Router(_policy({"a": 100, "dark": 0}))
    got = router.assign("user-1", forced="dark")
    assert (got.variant, got.forced) == ("dark", True)
    assert got.key_hash == key_hash("s3cret", "user-1") and "user-1" not in str(got.key_hash)
    with pytest.raises(InvalidInput, match="X-Dockyard-Variant names 'nope'"):
        router.assign(None, forced="nope")


def test_find_key_in_bodies() -> None:
    assert find_key({"user_id": 7, "x": [1]}, "user_id") == "7"
    assert find_key([{"user_id": "u1", "x": 1}, {"user_id": "u2"}], "user_id") == "u1"
    assert find_key({"dataframe_records": [{"user_id": "u3"}]}, "user_id") == "u3"
    split = {"dataframe_split": {"columns": ["x", "user_id"], "data": [[1, "u4"]]}}
    assert find_key(split, "user_id") == "u4"
    assert find_key({"inputs": {"user_id": ["u5", "u6"]}}, "user_id") == "u5"
    assert find_key({"meta": {"user": "u7"}}, "meta.user") == "u7"
    assert find_key({"x": [1]}, "user_id") is None
    assert find_key({"user_id": 1}, None) is None
