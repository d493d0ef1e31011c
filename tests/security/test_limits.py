"""Oversized names and keys, and pagination limits: always a 4xx envelope, nothing written.

Every name or key field gets a value one past its limit (and a megabyte-class one); every list
route gets ``max_results`` of 0, -1, one past the maximum and a 30-digit number, and page tokens
that are garbage, negative, absurdly large, from another query, or megabytes long.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from dockyard.core.paging import MAX_PAGE_SIZE

from ._target import API, Target, assert_envelope

LONG_ID = "9" * 40
HUGE = "x" * 200_000


def _check(t: Target, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    before = t.snapshot()
    r = t.client.request(method, t.fmt(url), **kwargs)
    body = r.json()
    assert_envelope(r.status_code, body)
    assert t.snapshot() == before, f"{method} {url} changed the store"
    return body


OVERSIZED = [
    ("POST", "/experiments", {"name": "n" * 257}),
    ("POST", "/experiments", {"name": HUGE}),
    ("POST", "/experiments/get-or-create", {"name": "n" * 257}),
    ("PATCH", "/experiments/{exp}", {"name": "n" * 257}),
    ("POST", "/experiments/{exp}/tags", {"key": "k" * 251, "value": "v"}),
    ("POST", "/runs", {"name": "n" * 257}),
    ("POST", "/runs", {"tags": {"k" * 251: "v"}}),
    ("PATCH", "/runs/{run}", {"name": HUGE}),
    ("POST", "/runs/{run}/batch", {"params": {"k" * 251: "v"}}),
    ("POST", "/runs/{run}/batch", {"params": {"p": "v" * 6001}}),
    ("POST", "/runs/{run}/batch", {"tags": {"t": "v" * 8001}}),
    ("POST", "/runs/{run}/batch", {"metrics": [{"key": "k" * 251, "value": 1.0}]}),
    ("POST", "/runs/{run}/inputs", {"inputs": [{"name": HUGE, "digest": "d", "context": "c"}]}),
    ("POST", "/models", {"name": "m" * 257}),
    ("POST", "/models", {"name": "ok", "description": HUGE * 2}),
    ("POST", "/models", {"name": "ok", "tags": {"k" * 251: "v"}}),
    ("PUT", "/models/fraud/aliases/" + "a" * 65, {"version": 1}),
    ("PUT", "/models/fraud/tags/" + "k" * 251, {"value": "v"}),
    ("PUT", "/models/fraud/tags/t", {"value": "v" * 8001}),
    ("POST", "/models/" + "m" * 257 + "/versions", {"source": "runs:/{run}/model"}),
    ("POST", "/models/fraud/versions", {"source": "runs:/{run}/" + "p/" * 600}),
    ("POST", "/models/fraud/versions/1/transition", {"to": "approved", "reason": HUGE * 2}),
]


@pytest.mark.parametrize(("method", "route", "body"), OVERSIZED, ids=lambda v: str(v)[:40])
def test_oversized_names_keys_and_values_are_refused(
    target: Target, method: str, route: str, body: Any
) -> None:
    text = json.dumps(body).replace("{run}", target.ids["run"]).replace("{exp}", target.ids["exp"])
    filled = json.loads(text)
    _check(target, method, API + route, json=filled)


OVERSIZED_SEGMENTS = [
    ("GET", "/runs/" + "a" * 5000),
    ("GET", "/experiments/" + LONG_ID),
    ("GET", "/experiments/by-name/" + "n" * 5000),
    ("GET", "/experiments/resolve/" + LONG_ID),
    ("GET", "/models/" + "m" * 5000),
    ("GET", "/models/fraud/versions/" + LONG_ID),
    ("GET", "/models/fraud/versions/99999999999"),
    ("GET", "/runs/{run}/artifacts/" + "p" * 1025),
    ("PUT", "/runs/{run}/artifacts/" + "p/" * 600 + "f"),
    ("GET", "/runs/{run}/metrics/" + "k" * 251 + "/history"),
    ("GET", "/models/resolve?uri=models:/" + "m" * 2000 + "/1"),
    ("GET", "/audit?actor=" + "a" * 600),
    ("GET", "/audit?since=" + "9" * 30),
]


@pytest.mark.parametrize(("method", "route"), OVERSIZED_SEGMENTS, ids=lambda v: str(v)[:40])
def test_oversized_ids_in_urls_are_refused(target: Target, method: str, route: str) -> None:
    kwargs = {"content": b"x"} if method == "PUT" else {}
    _check(target, method, API + route, **kwargs)


LIST_ROUTES = [
    ("GET", "/experiments"),
    ("GET", "/models"),
    ("GET", "/models/fraud/versions"),
    ("GET", "/runs/{run}/metrics/loss/history"),
    ("GET", "/audit"),
    ("POST", "/runs/search"),
]
BAD_SIZES = [0, -1, MAX_PAGE_SIZE + 1, 10**30, -(10**30)]


def _list(t: Target, method: str, route: str, **params: Any) -> dict[str, Any]:
    if method == "POST":
        return _check(t, method, API + route, json=params)
    return _check(t, method, API + route, params=params)


@pytest.mark.parametrize(("method", "route"), LIST_ROUTES)
@pytest.mark.parametrize("size", BAD_SIZES)
def test_max_results_out_of_range_is_refused(
    target: Target, method: str, route: str, size: int
) -> None:
    _list(target, method, route, max_results=size)


def _token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


BAD_TOKENS = [
    "garbage!!",
    "%00",
    _token({"o": -1, "q": "x"}),
    _token({"o": 10**30, "q": "x"}),
    _token({"o": "1e400", "q": "x"}),
    _token([1, 2]),
    _token({"o": 5}),
    "A" * 20_000,
]


@pytest.mark.parametrize(("method", "route"), [r for r in LIST_ROUTES if r[1] != "/audit"])
@pytest.mark.parametrize("token", range(len(BAD_TOKENS)))
def test_bad_page_tokens_are_refused(target: Target, method: str, route: str, token: int) -> None:
    _list(target, method, route, page_token=BAD_TOKENS[token])


@pytest.mark.parametrize(("method", "route"), [r for r in LIST_ROUTES if r[1] != "/audit"])
def test_absurd_offsets_in_a_well_formed_token_are_refused(
    target: Target, method: str, route: str
) -> None:
    """A token of the right query, with its offset pushed past anything the store can seek."""
    c = target.client
    # Two of everything, so that a first page of one item comes with a token.
    run = target.ids["run"]
    c.post(
        f"{API}/runs/{run}/batch",
        json={"metrics": [{"key": "loss", "value": 1.0, "step": s} for s in (1, 2)]},
    )
    c.post(f"{API}/runs", json={"experiment_id": target.ids["exp"]})
    c.post(f"{API}/models", json={"name": "second"})
    c.post(f"{API}/experiments", json={"name": "second"})
    c.post(f"{API}/models/fraud/versions", json={"source": "models:/fraud/1"})
    first = target.client.request(
        method,
        target.fmt(API + route),
        **({"json": {"max_results": 1}} if method == "POST" else {"params": {"max_results": 1}}),
    )
    assert first.status_code == 200, first.text
    # Build a token for the same query (its fingerprint) with an absurd or negative offset.
    token = first.json().get("next_page_token")
    assert token is not None, first.text
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for offset in (2**63, 10**30, -5):
        forged = _token({**data, "o": offset})
        _list(target, method, route, max_results=1, page_token=forged)


@pytest.mark.parametrize("offset", [-1, 2**63, 10**30])
def test_audit_offsets_out_of_range_are_refused(target: Target, offset: int) -> None:
    _check(target, "GET", f"{API}/audit", params={"offset": offset})
