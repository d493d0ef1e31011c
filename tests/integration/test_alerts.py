"""Alert webhooks end to end, on SQLite and PostgreSQL: a real HTTP receiver on 127.0.0.1 (a
thread), a real store, a fake clock (no sleeping through backoff)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from dockyard.backend import Backend
from dockyard.cli.alerts import app as alerts_app
from dockyard.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from dockyard.governance.audit import Actor
from dockyard.governance.permissions import PERMISSION_ATTR, public_methods
from dockyard.monitoring.alerts import (
    ALERT_PERMISSIONS,
    AlertDispatcher,
    AlertService,
    WebhookTarget,
    enqueue_for_event,
    verify_signature,
)
from dockyard.store import schema as t

SECRET = "whsec-integration-9f8e7d6c5b4a"
ENV = {"DOCKYARD_WEBHOOK_SECRET": SECRET}


class FakeClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """A webhook receiver: answers ``fail_first`` requests with ``fail_status``, then 200
    (``fail_first=-1``: always fails). Records every request and whether its signature
    verified (against ``clock``)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fail_first = 0
        self.fail_status = 500
        self.fail_body = b"receiver is down"
        self.extra_headers: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "verified": verify_signature(
                                SECRET,
                                self.headers.get("X-Dockyard-Timestamp", ""),
                                body,
                                self.headers.get("X-Dockyard-Signature", ""),
                                now=receiver.clock.time(),
                            ),
                        }
                    )
                    failing = receiver.fail_first < 0 or n < receiver.fail_first
                status = receiver.fail_status if failing else 200
                payload = receiver.fail_body if failing else b'{"ok":true}'
                self.send_response(status)
                for k, v in receiver.extra_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hits(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver(clock: FakeClock) -> Iterator[Receiver]:
    r = Receiver(clock)
    try:
        yield r
    finally:
        r.close()


def _enqueue(
    backend: Backend,
    clock: FakeClock,
    targets: list[Any],
    *,
    kind: str = "drift",
    endpoint: str = "fraud",
    event_id: int | None = None,
) -> list[Any]:
    return backend.store.write(  # type: ignore[no-any-return]
        lambda u: enqueue_for_event(
            u,
            event_id,
            endpoint,
            kind,
            {"feature": "amount", "psi": 0.31, "nan": float("nan")},
            targets,
            now=int(clock.time() * 1000),
        )
    )


def _dispatcher(backend: Backend, clock: FakeClock, **kw: Any) -> AlertDispatcher:
    kw.setdefault("env", ENV)
    return AlertDispatcher(backend.store, clock=clock, rand=lambda: 0.0, **kw)


def _get(backend: Backend, delivery_id: str) -> Any:
    return backend.store.read(lambda u: u.get_delivery(delivery_id))


def _private(receiver: Receiver, **kw: Any) -> WebhookTarget:
    return WebhookTarget(receiver.url(kw.pop("path", "/hook")), allow_private=True, **kw)


# -- delivery ------------------------------------------------------------------------------------


def test_retried_with_backoff_then_delivered_and_signed(
    backend: Backend, clock: FakeClock, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    (d,) = _enqueue(backend, clock, [_private(receiver)])
    assert d.status == "pending" and d.attempts == 0
    disp = _dispatcher(backend, clock)

    stats = disp.deliver_due()
    assert stats.to_dict() == {"attempted": 1, "delivered": 0, "retrying": 1, "dead": 0}
    row = _get(backend, d.id)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt == int(clock.time() * 1000) + 2000  # 2 s, no jitter here
    assert row.last_error == "HTTP 500: receiver is down"

    assert disp.deliver_due().attempted == 0  # not due yet: nothing is sent
    assert receiver.hits == 1
    clock.advance(2)
    assert disp.deliver_due().retrying == 1
    assert _get(backend, d.id).next_attempt == int(clock.time() * 1000) + 4000  # doubled
    clock.advance(4)
    assert disp.deliver_due().delivered == 1

    row = _get(backend, d.id)
    assert row.status == "delivered" and row.attempts == 3
    assert row.delivered == int(clock.time() * 1000) and row.next_attempt is None
    assert disp.deliver_due().attempted == 0  # delivered once, never again
    assert receiver.hits == 3

    reqs = receiver.requests
    assert all(r["verified"] for r in reqs)
    assert {r["headers"]["X-Dockyard-Delivery"] for r in reqs} == {d.id}  # dedupe key
    assert {r["headers"]["X-Dockyard-Event"] for r in reqs} == {"drift"}
    assert len({r["body"] for r in reqs}) == 1  # the same bytes on every attempt
    assert reqs[0]["headers"]["Host"] == f"127.0.0.1:{receiver.port}"
    assert reqs[0]["headers"]["Content-Type"] == "application/json"
    body = json.loads(reqs[0]["body"])
    assert body == {
        "delivery_id": d.id,
        "event_id": None,
        "kind": "drift",
        "endpoint": "fraud",
        "time": d.created,
        "data": {"feature": "amount", "psi": 0.31, "nan": None},
    }


def test_always_failing_ends_dead_stays_listed_and_replays(
    backend: Backend, clock: FakeClock, receiver: Receiver
) -> None:
    receiver.fail_first = -1
    target = _private(receiver, path="/hook?token=tok-in-query-123")
    (d,) = _enqueue(backend, clock, [target])
    disp = _dispatcher(backend, clock, max_attempts=4)
    for _ in range(4):
        disp.deliver_due()
        clock.advance(3600)
    row = _get(backend, d.id)
    assert row.status == "dead" and row.attempts == 4 and row.next_attempt is None
    assert row.last_error == "HTTP 500: receiver is down"
    assert disp.deliver_due().attempted == 0  # dead: never sent again by itself
    assert receiver.hits == 4

    svc = AlertService(backend.store, Actor("ops"), env=ENV, clock=clock)
    dead = svc.list_deliveries(status="dead")
    assert [x.id for x in dead] == [d.id]
    assert svc.list_deliveries(status="dead", endpoint="other") == []
    assert dead[0].safe_target.endswith("/hook?***")
    assert svc.get_delivery(d.id).status == "dead"

    with pytest.raises(Conflict, match=r"(pending|delivered), not dead"):
        _enqueue_and_replay_pending(backend, clock, receiver, svc)

    receiver.fail_first = 0  # the receiver recovers
    replayed = svc.replay(d.id)
    assert replayed.status == "pending" and replayed.attempts == 0
    assert replayed.next_attempt == int(clock.time() * 1000)
    with pytest.raises(Conflict, match="is pending, not dead"):
        svc.replay(d.id)
    stats = svc.deliver_now(endpoint="fraud")
    assert stats.delivered >= 1
    assert _get(backend, d.id).status == "delivered"
    last = [r for r in receiver.requests if r["headers"]["X-Dockyard-Delivery"] == d.id][-1]
    assert last["verified"] and last["path"] == "/hook?token=tok-in-query-123"

    events = backend.tracking(Actor("ops")).list_audit_events(action="alerts.replay")
    assert len(events) == 1
    ev = events[0]
    assert ev.actor == "ops" and ev.resource_type == "endpoint" and ev.resource_id == "fraud"
    assert ev.details["delivery_id"] == d.id and ev.details["target_host"] == "127.0.0.1"
    assert "tok-in-query-123" not in json.dumps(ev.details)

    with pytest.raises(NotFound):
        svc.replay("no-such-delivery")


def _enqueue_and_replay_pending(
    backend: Backend, clock: FakeClock, receiver: Receiver, svc: AlertService
) -> None:
    (other,) = _enqueue(backend, clock, [_private(receiver)], kind="quality")
    svc.replay(other.id)


def test_replay_all_dead_of_an_endpoint(
    backend: Backend, clock: FakeClock, receiver: Receiver
) -> None:
    receiver.fail_first = -1
    receiver.fail_status = 404  # permanent: dead after 3 attempts, not max_attempts
    ds = _enqueue(backend, clock, [_private(receiver), _private(receiver, path="/b")])
    _enqueue(backend, clock, [_private(receiver)], endpoint="churn")
    disp = _dispatcher(backend, clock)
    for _ in range(3):
        disp.deliver_due()
        clock.advance(3600)
    statuses = {x.id: (x.status, x.attempts) for x in _list(backend)}
    assert set(statuses.values()) == {("dead", 3)}
    svc = AlertService(backend.store, Actor("ops"), env=ENV, clock=clock)
    replayed = svc.replay_dead("fraud")
    assert sorted(x.id for x in replayed) == sorted(x.id for x in ds)
    assert {x.status for x in svc.list_deliveries(endpoint="churn")} == {"dead"}
    assert len(backend.tracking(Actor("ops")).list_audit_events(action="alerts.replay")) == 2


def _list(backend: Backend) -> list[Any]:
    return backend.store.read(lambda u: u.list_deliveries(limit=100))  # type: ignore[no-any-return]


def test_loopback_target_without_allow_private_is_refused_and_never_contacted(
    backend: Backend, clock: FakeClock, receiver: Receiver
) -> None:
    (d,) = _enqueue(backend, clock, [receiver.url()])  # a plain URL: allow_private false
    disp = _dispatcher(backend, clock)
    for _ in range(5):
        disp.deliver_due()
        clock.advance(3600)
    row = _get(backend, d.id)
    assert receiver.hits == 0
    assert row.status == "dead" and row.attempts == 3  # a refused target dies sooner
    assert "target refused" in row.last_error and "loopback" in row.last_error


def test_hostname_target_connects_to_the_checked_address_with_host_header(
    backend: Backend, clock: FakeClock, receiver: Receiver
) -> None:
    # "localhost" may resolve to ::1 first, where nothing listens: the next checked address
    # is tried; the Host header keeps the name.
    target = WebhookTarget(f"http://localhost:{receiver.port}/hook", allow_private=True)
    _enqueue(backend, clock, [target])
    assert _dispatcher(backend, clock).deliver_due().delivered == 1
    assert receiver.requests[0]["headers"]["Host"] == f"localhost:{receiver.port}"
    assert receiver.requests[0]["verified"]

    # Declared private but resolving to a loopback address now: refused at delivery.
    def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    (d2,) = _enqueue(backend, clock, [f"http://hooks.example.com:{receiver.port}/x"])
    _dispatcher(backend, clock, resolver=rebinding).deliver_due()
    assert receiver.hits == 1
    assert "'hooks.example.com' resolves to 127.0.0.1" in _get(backend, d2.id).last_error


def test_redirects_are_not_followed(backend: Backend, clock: FakeClock, receiver: Receiver) -> None:
    receiver.fail_first = 1
    receiver.fail_status = 302
    receiver.extra_headers = {"Location": receiver.url("/elsewhere")}
    (d,) = _enqueue(backend, clock, [_private(receiver)])
    _dispatcher(backend, clock).deliver_due()
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    row = _get(backend, d.id)
    assert row.status == "pending" and "HTTP 302" in row.last_error
    assert "redirects are not followed" in row.last_error


def test_retry_after_and_timeouts(backend: Backend, clock: FakeClock, receiver: Receiver) -> None:
    receiver.fail_first = -1
    receiver.fail_status = 429
    receiver.extra_headers = {"Retry-After": "30"}
    (d,) = _enqueue(backend, clock, [_private(receiver)])
    _dispatcher(backend, clock).deliver_due()
    row = _get(backend, d.id)
    assert row.next_attempt == int(clock.time() * 1000) + 30_000
    assert row.status == "pending" and row.last_error.startswith("HTTP 429")

    # Nothing listening: a connection error is a failure like any other.
    receiver.close()
    (d2,) = _enqueue(backend, clock, [_private(receiver, path="/x")])
    _dispatcher(backend, clock).deliver_due(endpoint="fraud", limit=10)
    row = _get(backend, d2.id)
    assert row.status == "pending" and row.attempts == 1
    assert "cannot connect to 127.0.0.1" in row.last_error


def test_the_secret_never_appears_in_errors_or_logs(
    backend: Backend, clock: FakeClock, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.fail_first = -1
    receiver.fail_body = f"bad signature, expected key {SECRET} token={SECRET}".encode()
    (d,) = _enqueue(backend, clock, [_private(receiver)])
    disp = _dispatcher(backend, clock, max_attempts=2)
    disp.deliver_due()
    clock.advance(3600)
    disp.deliver_due()
    row = _get(backend, d.id)
    assert row.status == "dead" and row.last_error.startswith("HTTP 500: bad signature")
    assert SECRET not in row.last_error and len(row.last_error) <= 400
    assert SECRET not in caplog.text
    assert "is dead after 2 attempt(s)" in caplog.text

    # No key in the environment: not sent unsigned; the error names the variable only.
    (d2,) = _enqueue(
        backend, clock, [_private(receiver, secret_env="OPS_HOOK_KEY")], kind="quality"
    )
    hits = receiver.hits
    _dispatcher(backend, clock, env={"DOCKYARD_WEBHOOK_SECRET": SECRET}).deliver_due()
    row = _get(backend, d2.id)
    assert receiver.hits == hits
    assert "OPS_HOOK_KEY is not set" in row.last_error and SECRET not in row.last_error

    # sign: false sends unsigned on purpose.
    receiver.fail_first = 0
    receiver.requests.clear()
    (d3,) = _enqueue(backend, clock, [_private(receiver, sign=False)], kind="perf")
    _dispatcher(backend, clock, env={}).deliver_due()
    assert _get(backend, d3.id).status == "delivered"
    assert "X-Dockyard-Signature" not in receiver.requests[-1]["headers"]
    assert SECRET not in caplog.text


def test_enqueue_matches_events_and_links_the_monitoring_event(
    backend: Backend, clock: FakeClock, receiver: Receiver
) -> None:
    def add_event(u: Any) -> int:
        result = u.conn.execute(
            insert(t.monitoring_events).values(
                time=1, kind="drift", endpoint="fraud", monitor="m", run_id=None, payload={}
            )
        )
        return int(result.inserted_primary_key[0])

    event_id = backend.store.write(add_event)
    targets = [
        {"url": receiver.url("/all"), "allow_private": True},
        {"url": receiver.url("/drift"), "allow_private": True, "events": ["drift*"]},
        {"url": receiver.url("/perf"), "allow_private": True, "events": ["performance"]},
    ]
    ds = _enqueue(backend, clock, targets, event_id=event_id, kind="drift.feature")
    assert sorted(d.target.rsplit("/", 1)[1] for d in ds) == ["all", "drift"]
    assert {d.event_id for d in ds} == {event_id}
    assert {d.kind for d in ds} == {"drift.feature"}
    assert _dispatcher(backend, clock).deliver_due().delivered == 2
    assert sorted(r["path"] for r in receiver.requests) == ["/all", "/drift"]
    with pytest.raises(InvalidInput):
        _enqueue(backend, clock, ["ftp://x.example.com"])
    with pytest.raises(InvalidInput):
        _enqueue(backend, clock, [receiver.url()], endpoint="bad name")


def test_two_dispatchers_never_claim_the_same_delivery(backend: Backend, clock: FakeClock) -> None:
    targets = [f"https://hooks{i}.example.com/x" for i in range(20)]
    _enqueue(backend, clock, targets)
    now = int(clock.time() * 1000)
    claims: list[list[str]] = []
    barrier = threading.Barrier(2)

    def claim() -> None:
        barrier.wait()
        got = backend.store.write(lambda u: u.claim_due_deliveries(now, 12, 300_000))
        claims.append([d.id for d in got])

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    a, b = claims
    assert not set(a) & set(b)
    assert len(a) + len(b) == 20
    rows = _list(backend)
    assert {r.attempts for r in rows} == {1}
    assert {r.next_attempt for r in rows} == {now + 300_000}  # leased
    assert backend.store.write(lambda u: u.claim_due_deliveries(now, 50, 1000)) == []


def test_a_stale_result_does_not_overwrite_a_newer_claim(
    backend: Backend, clock: FakeClock
) -> None:
    (d,) = _enqueue(backend, clock, ["https://hooks.example.com/x"])
    now = int(clock.time() * 1000)
    (first,) = backend.store.write(lambda u: u.claim_due_deliveries(now, 1, 10))
    (second,) = backend.store.write(lambda u: u.claim_due_deliveries(now + 20, 1, 10))
    assert (first.attempts, second.attempts) == (1, 2)
    stale = backend.store.write(
        lambda u: u.mark_failed(d.id, attempts=1, next_attempt=None, last_error="old")
    )
    assert stale is False and _get(backend, d.id).status == "pending"
    assert backend.store.write(lambda u: u.mark_delivered(d.id, now + 30))
    assert _get(backend, d.id).status == "delivered"


# -- permissions ---------------------------------------------------------------------------------


def test_every_public_method_is_declared_and_gated() -> None:
    methods = public_methods(AlertService)
    assert sorted(ALERT_PERMISSIONS) == methods
    for name in methods:
        assert getattr(getattr(AlertService, name), PERMISSION_ATTR) == ALERT_PERMISSIONS[name]


def test_permissions(backend: Backend, clock: FakeClock, receiver: Receiver) -> None:
    ids = backend.identity(Actor("someone"))
    ids.create_user("root", roles=["admin"])
    ids = backend.identity(Actor("root"))
    ids.create_user("dee")
    ids.grant("dee", "deployer", "endpoint", "fraud")
    ids.create_user("vic")
    ids.grant("vic", "viewer", "endpoint", "fraud")
    ids.create_user("nobody")

    receiver.fail_first = -1
    (d,) = _enqueue(backend, clock, [_private(receiver)])
    (c,) = _enqueue(backend, clock, [_private(receiver)], endpoint="churn")
    _dispatcher(backend, clock, max_attempts=1).deliver_due()

    def svc(name: str) -> AlertService:
        return AlertService(backend.store, Actor(name), env=ENV, clock=clock)

    assert [x.id for x in svc("vic").list_deliveries()] == [d.id]  # only what vic may read
    assert svc("vic").get_delivery(d.id).id == d.id
    with pytest.raises(PermissionDenied):
        svc("vic").get_delivery(c.id)
    with pytest.raises(PermissionDenied):
        svc("vic").replay(d.id)
    with pytest.raises(PermissionDenied):
        svc("nobody").list_deliveries()
    with pytest.raises(PermissionDenied):
        svc("dee").replay(c.id)
    with pytest.raises(PermissionDenied):
        svc("dee").deliver_now()  # every endpoint: needs a global grant
    assert svc("dee").replay(d.id).status == "pending"
    assert svc("dee").deliver_now(endpoint="fraud").attempted == 1
    assert svc("root").replay(c.id).status == "pending"
    with pytest.raises(InvalidInput):
        svc("root").list_deliveries(status="lost")


# -- CLI -----------------------------------------------------------------------------------------


def test_cli(sdk_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.client.client import _local_backend
    from dockyard.core.config import load_settings

    calls: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200 if len(calls) > 1 else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=cli-token-xyz"
        monkeypatch.setenv("DOCKYARD_WEBHOOK_SECRET", SECRET)
        store = _local_backend(load_settings()).store
        (d,) = store.write(
            lambda u: enqueue_for_event(
                u, None, "fraud", "drift", {"x": 1}, [{"url": url, "allow_private": True}]
            )
        )
        # Make it dead by hand (as after its last attempt), to replay it from the CLI.
        store.write(lambda u: u.claim_due_deliveries(d.created + 1, 1, 0))
        store.write(lambda u: u.mark_failed(d.id, attempts=1, next_attempt=None, last_error="x"))
        runner = CliRunner()

        res = runner.invoke(alerts_app, ["list", "--status", "dead"])
        assert res.exit_code == 0, res.output
        assert d.id in res.output and "cli-token-xyz" not in res.output
        res = runner.invoke(alerts_app, ["list", "--json", "--endpoint", "fraud"])
        assert [x["id"] for x in json.loads(res.output)] == [d.id]
        res = runner.invoke(alerts_app, ["show", d.id])
        assert res.exit_code == 0 and "dead" in res.output and "cli-token-xyz" not in res.output
        res = runner.invoke(alerts_app, ["replay", d.id])
        assert res.exit_code == 0 and "pending again" in res.output, res.output
        res = runner.invoke(alerts_app, ["deliver", "--json"])
        assert json.loads(res.output)["retrying"] == 1  # the receiver's first answer is 500
        assert store.read(lambda u: u.get_delivery(d.id)).status == "pending"
        res = runner.invoke(alerts_app, ["replay", "--all-dead", "--endpoint", "fraud"])
        assert res.exit_code == 0 and "0 dead deliveries" in res.output
        res = runner.invoke(alerts_app, ["replay"])
        assert isinstance(res.exception, InvalidInput)
    finally:
        server.shutdown()
        server.server_close()


# -- TLS: connect to the checked address, verify the certificate against the host name ---------


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signs for DNS name ``localhost`` only (no IP)."""
    import datetime as dt

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("dockyard test CA"))
        .issuer_name(name("dockyard test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, cert_pem, key_pem


def test_https_pins_the_address_and_verifies_the_host_name(
    backend: Backend, clock: FakeClock, tmp_path: Path
) -> None:
    import ssl

    ca_pem, cert_pem, key_pem = _tls_files(tmp_path)
    receiver = Receiver(clock)
    sni: list[str | None] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    ctx.sni_callback = lambda sock, server_name, _ctx: sni.append(server_name)  # type: ignore[assignment,misc]
    receiver.server.socket = ctx.wrap_socket(receiver.server.socket, server_side=True)
    try:
        env = {**ENV, "SSL_CERT_FILE": str(ca_pem)}
        port = receiver.port
        # The name is resolved and checked, the connection goes to 127.0.0.1, and TLS sends
        # SNI "localhost" and verifies the certificate against "localhost".
        (d,) = _enqueue(backend, clock, [WebhookTarget(f"https://localhost:{port}/h", True)])
        assert (
            _dispatcher(backend, clock, env=env, resolver=lambda h, p: ["127.0.0.1"])
            .deliver_due()
            .delivered
            == 1
        )
        assert _get(backend, d.id).status == "delivered"
        assert sni == ["localhost"] and receiver.requests[0]["verified"]
        assert receiver.requests[0]["headers"]["Host"] == f"localhost:{port}"

        # The same server by IP: its certificate names no IP, so verification fails.
        (d2,) = _enqueue(backend, clock, [WebhookTarget(f"https://127.0.0.1:{port}/h", True)])
        _dispatcher(backend, clock, env=env).deliver_due()
        row = _get(backend, d2.id)
        assert row.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in row.last_error

        # Without the private CA the certificate is not trusted either.
        clock.advance(3600)
        _dispatcher(backend, clock).deliver_due()
        row = _get(backend, d2.id)
        assert row.attempts == 2 and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert receiver.hits == 1
    finally:
        receiver.close()
