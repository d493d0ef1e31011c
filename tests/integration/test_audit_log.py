"""The audit log: hash chain, verify (tampering by direct SQL), retention, artifact downloads,
the migration that chains existing events, and the CLI and REST faces -- SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from dockyard.backend import Backend
from dockyard.cli.main import main
from dockyard.core.audit_chain import GENESIS_HASH, event_hash
from dockyard.core.config import Settings, load_settings
from dockyard.core.entities import AuditEvent
from dockyard.core.errors import InvalidInput, NotFound
from dockyard.governance.audit import Actor, apply_retention, record_event, verify_audit_log
from dockyard.store import schema as t
from dockyard.store.engine import create_engines, upgrade
from dockyard.store.sql import SqlStore
from dockyard.tracking.service import TrackingService

DAY = 86_400_000
T0 = 1_700_000_000_000  # Nov 2023


def _events(service: TrackingService) -> list[AuditEvent]:
    return service.list_audit_events(limit=50_000)


def _activity(service: TrackingService, runs: int = 3) -> list[AuditEvent]:
    exp = service.create_experiment("audited", tags={"team": "risk"})
    for i in range(runs):
        run = service.start_run(exp.experiment_id, name=f"r{i}")
        service.log_batch(run.run_id, metrics=[{"key": "auc", "value": 0.5 + i / 10}])
        service.end_run(run.run_id)
    return _events(service)


def _sql(db_url: str, *statements: Any) -> None:
    """Run statements straight on the database, behind the store's back (the tamperer)."""
    engines = create_engines(db_url)
    try:
        with engines.writer.begin() as conn:
            for s in statements:
                conn.execute(s)
    finally:
        engines.dispose()


def _append(store: SqlStore, n: int, at: int, action: str = "thing.do") -> list[int]:
    def fn(u: Any) -> list[int]:
        return [
            u.append_audit(
                actor="alice",
                action=action,
                resource_type="thing",
                resource_id=str(i),
                details={"i": i},
                now=at + i,
            )
            for i in range(n)
        ]

    return store.write(fn)


# -- the chain -------------------------------------------------------------------------------


def test_every_event_chains_onto_the_previous_one(service: TrackingService) -> None:
    events = _activity(service)
    assert len(events) == 1 + 3 * 3  # experiment, then create, log and end per run
    assert events[0].prev_hash == GENESIS_HASH
    for prev, e in itertools.pairwise(events):
        assert e.event_id == prev.event_id + 1
        assert e.prev_hash == prev.hash
    for e in events:
        assert len(e.hash) == 64
        assert e.hash == event_hash(
            e.event_id,
            e.time,
            e.actor,
            e.action,
            e.resource_type,
            e.resource_id,
            e.details,
            e.prev_hash,
        )
    result = service.verify_audit_log()
    assert result.ok and result.broken_event_id is None
    assert result.count == len(events)
    assert (result.first_event_id, result.last_event_id) == (1, events[-1].event_id)
    assert result.last_hash == events[-1].hash


def test_an_empty_log_verifies(service: TrackingService) -> None:
    result = service.verify_audit_log()
    assert result.ok and result.count == 0 and result.last_hash is None


def test_details_hash_as_they_read_back(service: TrackingService, backend: Backend) -> None:
    """Tuples, nested objects, unicode and floats hash the same on write and on verify."""
    details = {"t": (1, 2), "nested": {"b": [0.1, 1e300], "a": "é☃"}, "neg": -0.0, "n": None}
    backend.store.write(lambda u: record_event(u, Actor("bob"), "x.y", "thing", "1", **details))
    assert service.verify_audit_log().ok


def test_concurrent_writers_never_fork_the_chain(settings: Settings) -> None:
    """Four writers, each its own store (connection pool), appending at once."""
    backends = [Backend.open(settings) for _ in range(4)]
    errors: list[BaseException] = []

    def work(b: Backend, k: int) -> None:
        try:
            svc = b.tracking(Actor(f"w{k}"))
            run = svc.start_run(None, name=f"w{k}")
            for i in range(15):
                svc.log_batch(run.run_id, metrics=[{"key": "m", "value": float(i), "step": i}])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b, k)) for k, b in enumerate(backends)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert errors == []
        svc = backends[0].tracking(Actor("checker"))
        events = _events(svc)
        assert len({e.prev_hash for e in events}) == len(events)  # no two share a predecessor
        result = svc.verify_audit_log()
        assert result.ok, result.message
        # The default experiment is created once; each writer creates a run and logs 15 times.
        assert result.count == len(events) >= 4 * 16
    finally:
        for b in backends:
            b.close()


def test_a_second_writer_waits_for_the_first_to_commit(settings: Settings) -> None:
    """The append lock is held until commit: a second transaction reads the chain's head only
    after the first one committed, so it chains onto that event (no fork, no retry)."""
    first, second = Backend.open(settings), Backend.open(settings)
    holding, release = threading.Event(), threading.Event()
    attempts: list[str] = []

    def slow(u: Any) -> int:
        attempts.append("first")
        event_id = u.append_audit(
            actor="a", action="x.first", resource_type="t", resource_id="1", details={}, now=T0
        )
        holding.set()
        assert release.wait(10)
        return int(event_id)

    def fast(u: Any) -> int:
        attempts.append("second")
        return int(
            u.append_audit(
                actor="b", action="x.second", resource_type="t", resource_id="2", details={},
                now=T0,
            )
        )  # fmt: skip

    results: dict[str, int] = {}
    try:
        a = threading.Thread(target=lambda: results.update(a=first.store.write(slow)))
        a.start()
        assert holding.wait(10)
        b = threading.Thread(target=lambda: results.update(b=second.store.write(fast)))
        b.start()
        b.join(0.5)
        assert b.is_alive()  # waiting for the first transaction
        release.set()
        a.join(10)
        b.join(10)
        assert results == {"a": 1, "b": 2}
        assert attempts == ["first", "second"]  # nobody had to retry
        events = first.store.read(lambda u: list(u.iter_audit_chain()))
        assert events[1].prev_hash == events[0].hash
        assert verify_audit_log(first.store).ok
    finally:
        release.set()
        first.close()
        second.close()


# -- tampering, straight in the database -----------------------------------------------------


def test_an_edited_event_is_named(service: TrackingService, db_url: str) -> None:
    events = _activity(service)
    target = events[4]
    _sql(
        db_url,
        update(t.audit_events)
        .where(t.audit_events.c.event_id == target.event_id)
        .values(details={**target.details, "metrics": 999}),
    )
    result = service.verify_audit_log()
    assert not result.ok
    assert result.broken_event_id == target.event_id
    assert result.problem == "edited"
    assert f"audit event {target.event_id} " in result.message and "edited" in result.message
    assert result.count == 4  # the events before it are fine


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
    service: TrackingService, db_url: str
) -> None:
    events = _activity(service)
    e = events[2]
    forged = event_hash(
        e.event_id, e.time, "mallory", e.action, e.resource_type, e.resource_id, e.details,
        e.prev_hash,
    )  # fmt: skip
    _sql(
        db_url,
        update(t.audit_events)
        .where(t.audit_events.c.event_id == e.event_id)
        .values(actor="mallory", hash=forged),
    )
    result = service.verify_audit_log()
    assert not result.ok and result.broken_event_id == events[3].event_id
    assert result.problem == "reordered"


def test_a_deleted_event_is_named(service: TrackingService, db_url: str) -> None:
    events = _activity(service)
    gone = events[5]
    _sql(db_url, delete(t.audit_events).where(t.audit_events.c.event_id == gone.event_id))
    result = service.verify_audit_log()
    assert not result.ok
    assert result.broken_event_id == gone.event_id + 1
    assert result.problem == "deleted"
    assert f"events {gone.event_id}..{gone.event_id} are missing" in result.message


def test_deleting_the_oldest_events_is_caught(service: TrackingService, db_url: str) -> None:
    events = _activity(service)
    _sql(db_url, delete(t.audit_events).where(t.audit_events.c.event_id <= events[1].event_id))
    result = service.verify_audit_log()
    assert not result.ok and result.broken_event_id == events[2].event_id
    assert result.problem == "deleted" and "oldest" in result.message


@pytest.mark.parametrize("with_chain_columns", [True, False])
def test_two_swapped_events_are_named(
    service: TrackingService, db_url: str, with_chain_columns: bool
) -> None:
    events = _activity(service)
    a, b = events[3], events[6]
    cols = ["time", "actor", "action", "resource_type", "resource_id", "details"]
    if with_chain_columns:
        cols += ["prev_hash", "hash"]

    def values(e: AuditEvent) -> dict[str, Any]:
        return {c: getattr(e, c) for c in cols}

    c = t.audit_events.c
    _sql(
        db_url,
        update(t.audit_events).where(c.event_id == a.event_id).values(values(b)),
        update(t.audit_events).where(c.event_id == b.event_id).values(values(a)),
    )
    result = service.verify_audit_log()
    assert not result.ok and result.broken_event_id == a.event_id
    assert result.problem == ("reordered" if with_chain_columns else "edited")


def test_verify_streams_in_pages(backend: Backend, db_url: str) -> None:
    """A log longer than a page verifies, and a break on a later page is still found."""
    ids = _append(backend.store, 25, T0)
    ok = verify_audit_log(backend.store, page_size=7)
    assert ok.ok and ok.count == 25 and ok.last_event_id == ids[-1]
    _sql(db_url, delete(t.audit_events).where(t.audit_events.c.event_id == ids[20]))
    broken = verify_audit_log(backend.store, page_size=7)
    assert not broken.ok and broken.broken_event_id == ids[21] and broken.count == 20


# -- retention -------------------------------------------------------------------------------


def test_retention_deletes_old_events_and_the_chain_still_verifies(
    backend: Backend, db_url: str
) -> None:
    store = backend.store
    old = _append(store, 10, T0)
    recent = _append(store, 5, T0 + 300 * DAY)
    now = T0 + 300 * DAY + 10
    result = apply_retention(store, Actor("ops"), 200, now=now)
    assert result.deleted == 10
    assert result.cutoff == now - 200 * DAY
    assert result.checkpoint_event_id == old[-1]
    assert result.event_id == recent[-1] + 1
    svc = backend.tracking(Actor("ops"))
    events = _events(svc)
    assert [e.event_id for e in events] == [*recent, result.event_id]
    purge = events[-1]
    assert (purge.action, purge.actor, purge.time) == ("audit.retention", "ops", now)
    assert purge.details["deleted"] == 10
    assert purge.details["checkpoint_hash"] == result.checkpoint_hash == events[0].prev_hash
    verified = svc.verify_audit_log()
    assert verified.ok and verified.count == 6, verified.message

    # Deleting the oldest remaining event by hand is still caught.
    _sql(db_url, delete(t.audit_events).where(t.audit_events.c.event_id == recent[0]))
    broken = svc.verify_audit_log()
    assert not broken.ok and broken.broken_event_id == recent[1]


def test_retention_needs_an_administrator(backend: Backend) -> None:
    from dockyard.core.errors import PermissionDenied

    store = backend.store
    backend.identity(Actor("laptop")).create_user("root", roles=["admin"])
    backend.identity(Actor("root")).create_user("vi", roles=["viewer"])
    before = [e.event_id for e in backend.tracking(Actor("root")).list_audit_events(limit=1000)]
    with pytest.raises(PermissionDenied, match="admin"):
        apply_retention(store, Actor("vi"), 183, now=T0 + 700 * DAY)
    after = [e.event_id for e in backend.tracking(Actor("root")).list_audit_events(limit=1000)]
    assert after == before  # nothing deleted, nothing recorded
    apply_retention(store, Actor("root"), 183, now=T0 + 700 * DAY)


def test_retention_can_delete_everything_even_its_earlier_checkpoints(backend: Backend) -> None:
    store = backend.store
    _append(store, 4, T0)
    first = apply_retention(store, Actor("ops"), 183, now=T0 + 200 * DAY)
    assert first.deleted == 4
    # A year later: the events and the first retention event are all old now.
    _append(store, 2, T0 + 300 * DAY)
    second = apply_retention(store, Actor("ops"), 183, now=T0 + 700 * DAY)
    assert second.deleted == 1 + 2
    result = verify_audit_log(store)
    assert result.ok and result.count == 1 and result.last_event_id == second.event_id
    # And with nothing old, it records a pass that deleted nothing.
    third = apply_retention(store, Actor("ops"), 183, now=T0 + 701 * DAY)
    assert third.deleted == 0 and third.checkpoint_hash is None
    assert verify_audit_log(store).count == 2


def test_retention_deletes_only_an_unbroken_run_of_oldest_events(backend: Backend) -> None:
    """An old timestamp after a recent one (a server with a slow clock) is kept, so what is
    left is still one chain."""
    store = backend.store
    _append(store, 3, T0)
    _append(store, 1, T0 + 400 * DAY)
    _append(store, 2, T0 + 1)  # written later, stamped early
    result = apply_retention(store, Actor("ops"), 183, now=T0 + 400 * DAY)
    assert result.deleted == 3
    assert verify_audit_log(store).ok
    assert verify_audit_log(store).count == 1 + 2 + 1


@pytest.mark.parametrize("days", [0, 30, 182, -5, "six months", True, 1.5])
def test_retention_shorter_than_six_months_is_refused(backend: Backend, days: Any) -> None:
    _append(backend.store, 2, T0)
    with pytest.raises(InvalidInput) as info:
        apply_retention(backend.store, Actor("ops"), days, now=T0 + 1000 * DAY)
    assert "183" in str(info.value) or "whole number" in str(info.value)
    assert verify_audit_log(backend.store).count == 2  # nothing deleted, nothing recorded


def test_the_retention_setting(tmp_path: Path) -> None:
    s = load_settings(overrides={"home": str(tmp_path)}, environ={})
    assert s.audit_retention_days is None
    s = load_settings(environ={"DOCKYARD_AUDIT_RETENTION_DAYS": "365"})
    assert s.audit_retention_days == 365
    with pytest.raises(InvalidInput, match="at least 183 days"):
        load_settings(environ={"DOCKYARD_AUDIT_RETENTION_DAYS": "90"})
    toml = tmp_path / "dockyard.toml"
    toml.write_text("audit_retention_days = 30\n")
    with pytest.raises(InvalidInput, match="183"):
        load_settings(environ={"DOCKYARD_CONFIG": str(toml)})


# -- sensitive reads -------------------------------------------------------------------------


def test_artifact_downloads_are_audited_once_per_call(
    service: TrackingService, tmp_path: Path
) -> None:
    run = service.start_run(None)
    for name in ("a.bin", "b.bin"):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / name).write_bytes(name.encode() * 10)
    service.log_artifacts(run.run_id, tmp_path / "src", artifact_path="model")
    before = len(_events(service))

    info, chunks = service.open_artifact(run.run_id, "model/a.bin")
    assert b"".join(chunks) == b"a.bin" * 10
    service.download_artifacts(run.run_id, "model", tmp_path / "out")
    assert (tmp_path / "out" / "model" / "b.bin").read_bytes() == b"b.bin" * 10

    new = _events(service)[before:]
    assert [(e.action, e.resource_id, e.actor) for e in new] == [
        ("artifact.download", run.run_id, "tester"),
        ("artifact.download", run.run_id, "tester"),
    ]
    assert new[0].details == {"path": "model/a.bin", "digest": info.digest, "size": 50}
    assert new[1].details == {"path": "model", "files": 2, "size": 100}

    # A refused download writes nothing.
    for call in (
        lambda: service.open_artifact(run.run_id, "model/missing.bin"),
        lambda: service.download_artifacts(run.run_id, "nothing", tmp_path / "o2"),
        lambda: service.open_artifact("0" * 32, "model/a.bin"),
    ):
        with pytest.raises(NotFound):
            call()
    assert len(_events(service)) == before + 2
    assert service.verify_audit_log().ok


# -- the migration ---------------------------------------------------------------------------


def test_migration_0003_chains_existing_events(db_url: str) -> None:
    engines = create_engines(db_url)
    try:
        upgrade(engines, "0002")
        legacy = [
            # PostgreSQL sequences skip ids on rollback: gaps in old logs are not tampering.
            (1, "alice", {"name": "exp"}),
            (2, "bob", {"nested": {"z": 1, "a": [1.5, "x"]}}),
            (5, "carol", {}),
        ]
        json_param = "CAST(:d AS JSON)" if engines.dialect == "postgresql" else ":d"
        with engines.writer.begin() as conn:
            for event_id, actor, details in legacy:
                conn.execute(
                    text(
                        "INSERT INTO audit_events (event_id, time, actor, action, "
                        "resource_type, resource_id, details) "
                        f"VALUES (:i, :t, :a, 'x.y', 'thing', 'r', {json_param})"
                    ),
                    {"i": event_id, "t": T0 + event_id, "a": actor, "d": json.dumps(details)},
                )
        upgrade(engines, "0003")
    finally:
        engines.dispose()
    store = SqlStore(db_url, migrate=False)  # at 0003: this test is about that migration
    try:
        result = verify_audit_log(store)
        assert result.ok and result.count == 3, result.message
        store.write(lambda u: record_event(u, Actor("dave"), "x.z", "thing", "r"))
        events = store.read(lambda u: list(u.iter_audit_chain()))
        assert [e.event_id for e in events] == [1, 2, 5, 6]
        assert events[0].prev_hash == GENESIS_HASH and events[3].prev_hash == events[2].hash
        assert verify_audit_log(store).count == 4
        _sql(db_url, update(t.audit_events).where(t.audit_events.c.event_id == 2).values(actor="x"))
        assert verify_audit_log(store).broken_event_id == 2
    finally:
        store.close()


# -- CLI ---------------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_verify_export_purge(
    sdk_store: Path, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dockyard.client.client import Client

    client = Client()
    exp = client.create_experiment("cli-audit")
    run = client.start_run(exp.experiment_id)
    client.end_run(run.run_id)

    code, out, _ = _cli(capsys, "audit", "list", "--action", "run.end", "--json")
    assert code == 0
    [ended] = json.loads(out)["items"]
    assert ended["resource_id"] == run.run_id and len(ended["hash"]) == 64
    code, out, _ = _cli(capsys, "audit", "list", "--resource-type", "experiment")
    assert code == 0 and "experiment.create" in out and "run.end" not in out
    code, out, _ = _cli(capsys, "audit", "list", "--since", "2999-01-01", "--json")
    assert json.loads(out)["items"] == []
    code, out, _ = _cli(capsys, "audit", "list", "--until", "2000-01-01T00:00:00+00:00", "--json")
    assert json.loads(out)["items"] == []
    code, _, err = _cli(capsys, "audit", "list", "--since", "last tuesday")
    assert code == 2 and err.startswith("error: --since 'last tuesday' is not a time")
    code, out, _ = _cli(capsys, "audit", "list", "--max-results", "1", "--json")
    page = json.loads(out)
    code, out, _ = _cli(capsys, "audit", "list", "--after", str(page["next_after"]), "--json")
    assert json.loads(out)["items"][0]["event_id"] == page["next_after"] + 1

    code, out, _ = _cli(capsys, "audit", "verify")
    assert code == 0 and out.startswith("audit log intact: 3 events")

    dest = tmp_path / "siem.jsonl"
    code, _, err = _cli(capsys, "audit", "export", "--out", str(dest))
    assert code == 0 and "exported 3 audit events" in err
    lines = [json.loads(line) for line in dest.read_text().splitlines()]
    assert [e["action"] for e in lines] == ["experiment.create", "run.create", "run.end"]
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    code, out, _ = _cli(capsys, "audit", "export", "-o", "-", "--actor", "nobody")
    assert code == 0 and out == ""
    code, out, _ = _cli(capsys, "audit", "export", "-o", "-", "--action", "run.end")
    assert [json.loads(x)["resource_id"] for x in out.splitlines()] == [run.run_id]

    code, _, err = _cli(capsys, "audit", "purge")
    assert code == 2 and "not configured" in err
    code, _, err = _cli(capsys, "audit", "purge", "--days", "30")
    assert code == 2 and "183" in err and err.count("\n") == 1
    code, out, _ = _cli(capsys, "audit", "purge", "--days", "183")
    assert code == 0 and "no audit events older than" in out
    code, out, _ = _cli(capsys, "audit", "verify")
    assert code == 0 and "4 events" in out

    _sql(
        db_url,
        update(t.audit_events).where(t.audit_events.c.event_id == 2).values(resource_id="other"),
    )
    code, out, err = _cli(capsys, "audit", "verify")
    assert code == 7 and out == ""
    assert err.startswith("error: audit event 2 does not match its hash") and err.count("\n") == 1


# -- REST --------------------------------------------------------------------------------------


@pytest.fixture
def api(settings: Settings) -> Iterator[Any]:
    from starlette.exceptions import StarletteDeprecationWarning

    from dockyard.server.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    with TestClient(create_app(settings)) as c:
        yield c


def test_rest_verify_and_keyset_paging(api: Any, db_url: str) -> None:
    for name in ("a", "b", "c"):
        assert api.post("/api/v1/experiments", json={"name": name}).status_code == 201
    r = api.get("/api/v1/audit/verify")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["count"] == 3 and len(body["last_hash"]) == 64
    items = api.get("/api/v1/audit", params={"after": 1}).json()["items"]
    assert [e["event_id"] for e in items] == [2, 3]
    assert items[0]["prev_hash"] != items[1]["prev_hash"]
    assert api.get("/api/v1/audit", params={"after": "x"}).status_code == 422

    _sql(db_url, delete(t.audit_events).where(t.audit_events.c.event_id == 2))
    body = api.get("/api/v1/audit/verify").json()
    assert body["ok"] is False and body["broken_event_id"] == 3 and body["problem"] == "deleted"


def test_no_store_row_escapes_the_chain(backend: Backend) -> None:
    """Every column the table has is either hashed or the hash itself."""
    hashed = {"event_id", "time", "actor", "action", "resource_type", "resource_id", "details"}
    assert {c.name for c in t.audit_events.c} == hashed | {"prev_hash", "hash"}
    assert backend.store.read(lambda u: u.conn.execute(select(t.audit_events)).all()) == []
