"""Header reflection, and the Host-header guard against DNS rebinding.

*Reflection*: nothing from a request -- its path, query, or any header -- is copied into a
response header. CRLF in a path cannot inject a header, no ``Location`` is ever built from the
request (the app never redirects: ``/api/v1/runs/`` is a 404, not a redirect), error answers
carry only our own headers.

*Host*: the server answers only to the hosts in ``allowed_hosts``; by default the address it is
bound to plus localhost, 127.0.0.1 and ::1. A DNS-rebinding page sends its own name as Host and
is refused with 403 ``permission_denied`` in the error envelope before anything happens -- GETs
included (they could read models and audit logs). ``/healthz`` stays open for probes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.core.config import load_settings
from dockyard.server._hosts import parse_allowed_hosts
from dockyard.server.app import create_app

from ._target import API, Target, assert_envelope

MARK = "zz-reflected-zz"
#: Headers a response may carry, and nothing else.
OUR_HEADERS = {
    "content-type",
    "content-length",
    "allow",
    "x-dockyard-digest",
    "content-disposition",
    "x-content-type-options",
}


def _check_no_reflection(headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        assert name.decode().lower() in OUR_HEADERS, f"unexpected response header {name!r}"
        assert MARK.encode() not in name.lower() and MARK.encode() not in value.lower()
        assert b"\r" not in value and b"\n" not in value
        assert b"set-cookie" not in name.lower()
        assert name.lower() != b"location"


REQUESTS = [
    ("GET", f"{API}/runs/{MARK}"),
    ("GET", f"{API}/runs/{{run}}"),
    ("GET", f"{API}/runs/{{run}}/artifacts/dir/file.txt"),
    ("GET", f"{API}/runs/{{run}}/artifacts/{MARK}%0d%0aSet-Cookie:%20{MARK}=1"),
    ("GET", f"{API}/runs/{MARK}%0D%0ALocation:%20http://evil.example/"),
    ("GET", f"{API}/models/{MARK}%0d%0aX-{MARK}:%201"),
    ("GET", f"{API}/models/fraud/versions/1/files/manifest.json"),
    ("GET", f"{API}/experiments/by-name/{MARK}%0d%0a{MARK}"),
    ("GET", f"{API}/runs/"),
    ("GET", f"{API}//runs/{{run}}"),
    ("GET", f"/{MARK}%0d%0aLocation:%20//evil.example"),
    ("DELETE", f"{API}/experiments"),
    ("PUT", f"{API}/runs/{{run}}/artifacts/{MARK}%0d%0a.txt"),
    ("GET", f"{API}/models/resolve?uri={MARK}%0d%0aLocation:x"),
    ("GET", f"{API}/audit?actor={MARK}%0d%0aX:1"),
]


@pytest.mark.parametrize(("method", "url"), REQUESTS)
def test_no_request_text_reaches_a_response_header(target: Target, method: str, url: str) -> None:
    hostile = [
        (b"host", b"testserver"),
        (b"origin", f"http://{MARK}.example".encode()),
        (b"referer", f"http://{MARK}.example/".encode()),
        (b"x-forwarded-host", f"{MARK}.example".encode()),
        (b"x-forwarded-proto", b"gopher"),
        (b"x-request-id", MARK.encode()),
        (b"cookie", f"session={MARK}".encode()),
        (b"accept-language", MARK.encode()),
        (b"authorization", f"Bearer {MARK}".encode()),
    ]
    status, headers, payload = target.raw(method, target.fmt(url), b"x", hostile)
    assert status < 500, payload
    _check_no_reflection(headers)
    if status >= 400:
        assert_envelope(status, json.loads(payload))


def test_the_app_never_redirects(target: Target) -> None:
    for url in (f"{API}/runs/", f"{API}/experiments/", f"{API}/docs/", f"{API}/models/"):
        r = target.client.get(url, follow_redirects=False)
        assert not 300 <= r.status_code < 400, (url, r.status_code)
        assert "location" not in r.headers


# -- Host header / DNS rebinding -----------------------------------------------------------------

STATE_CHANGES = [
    ("POST", "/experiments", {"name": "rebound"}),
    ("POST", "/runs", {}),
    ("PATCH", "/experiments/{exp}", {"name": "rebound"}),
    ("POST", "/runs/{run}/batch", {"params": {"rebound": "1"}}),
    ("PUT", "/runs/{run}/artifacts/rebound.txt", None),
    ("POST", "/blobs", None),
    ("POST", "/models", {"name": "rebound"}),
    ("PUT", "/models/fraud/aliases/rebound", {"version": 1}),
    ("DELETE", "/models/fraud/aliases/champion", None),
    ("DELETE", "/runs/{run}/tags/t", None),
    ("POST", "/runs/{run}/delete", None),
]
READS = [
    "/runs/{run}",
    "/experiments",
    "/runs/{run}/artifacts/dir/file.txt",
    "/models/fraud/versions/1/files/manifest.json",
    "/audit",
    "/openapi.json",
]
BAD_HOSTS = [
    b"evil.example",
    b"evil.example:8080",
    b"127.0.0.1.evil.example",
    b"localhost.evil.example",
    b"evil.example\r\nX-Injected: 1",
    b"testserver@evil.example",
    b"[::1].evil.example",
    b"",
    b"10.0.0.1",
]


def _refused(t: Target, method: str, url: str, host: bytes | None, body: bytes = b"") -> None:
    headers = [] if host is None else [(b"host", host)]
    headers.append((b"content-type", b"application/json"))
    status, resp_headers, payload = t.raw(method, t.fmt(API + url), body, headers)
    decoded = json.loads(payload)
    assert status == 403, (method, url, host, decoded)
    assert_envelope(status, decoded, codes=("permission_denied",))
    assert "allowed_hosts" in decoded["error"]["message"]
    _check_no_reflection(resp_headers)


@pytest.mark.parametrize("host", BAD_HOSTS, ids=lambda h: repr(h))
def test_unknown_hosts_are_refused_on_every_state_change(target: Target, host: bytes) -> None:
    before = target.snapshot()
    for method, url, body in STATE_CHANGES:
        raw = json.dumps(body).encode() if body is not None else b"data"
        _refused(target, method, url, host, raw)
    assert target.snapshot() == before


def test_unknown_hosts_are_refused_on_reads_too(target: Target) -> None:
    for url in READS:
        _refused(target, "GET", url, b"evil.example")
    _refused(target, "GET", "/runs/{run}", None)  # no Host header at all


@pytest.mark.parametrize(
    "host", [b"testserver", b"localhost", b"localhost:8080", b"127.0.0.1:9", b"[::1]:8080"]
)
def test_the_bound_host_and_loopback_names_are_allowed(target: Target, host: bytes) -> None:
    status, _h, payload = target.raw(
        "GET", target.fmt(f"{API}/runs/{{run}}"), b"", [(b"host", host)]
    )
    assert status == 200, payload


def test_healthz_answers_any_host(target: Target) -> None:
    status, _h, payload = target.raw("GET", "/healthz", b"", [(b"host", b"evil.example")])
    assert (status, json.loads(payload)) == (200, {"status": "ok"})


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Any]:
    from starlette.testclient import TestClient

    def make(allowed: str) -> Any:
        settings = load_settings(
            overrides={
                "home": str(tmp_path / allowed.replace("*", "any")),
                "allowed_hosts": allowed,
            },
            environ={},
        )
        return TestClient(create_app(settings), base_url="http://testserver")

    yield make


def test_allowed_hosts_setting(configured: Any) -> None:
    with configured("dockyard.example.com, .corp.example") as c:
        for host, expected in [
            ("dockyard.example.com", 201),
            ("DOCKYARD.example.com:443", 201),
            ("corp.example", 201),
            ("ml.corp.example", 201),
            ("evilcorp.example", 403),
            ("testserver", 403),  # an explicit list replaces the default
            ("localhost", 403),
        ]:
            r = c.post(f"{API}/runs", json={}, headers={"host": host})
            assert r.status_code == expected, (host, r.text)
    with configured("*") as c:
        r = c.post(f"{API}/runs", json={}, headers={"host": "anything.example"})
        assert r.status_code == 201, r.text


def test_allowed_hosts_parsing() -> None:
    assert parse_allowed_hosts(None) == (False, frozenset())
    assert parse_allowed_hosts(" ") == (False, frozenset())
    assert parse_allowed_hosts("A.example., [::1] ,") == (False, frozenset({"a.example", "::1"}))
    assert parse_allowed_hosts("x, *")[0] is True
