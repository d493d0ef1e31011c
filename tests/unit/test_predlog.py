"""The prediction log writer and reader: round trip, partitions, redaction before writing,
encryption, the bounded buffer under a flood, concurrency, schema evolution, time filters,
fsspec roots and endpoint names that cannot traverse."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from dockyard.artifacts.crypto import MAGIC, BlobCipher, EnvKeyProvider, new_key
from dockyard.core.errors import ConfigError, InvalidInput
from dockyard.governance.redaction import RedactionKey, RedactionPolicy
from dockyard.serving.predlog import (
    FIXED_COLUMNS,
    PredictionLogWriter,
    PredictionRecord,
    hour_partition,
    parse_time_spec,
    read_predictions,
    records_for_request,
)

HOUR = 3_600_000
SECRET = "predlog-test-redaction-key-0123456789"


def _now() -> int:
    return int(time.time() * 1000)


def _records(
    n: int, *, endpoint: str = "fraud", t: int | None = None, prefix: str = "r", **kw: Any
) -> list[PredictionRecord]:
    t = _now() if t is None else t
    out = []
    for i in range(n):
        out.extend(
            records_for_request(
                request_id=f"{prefix}{i}",
                endpoint=endpoint,
                variant=kw.get("variant", "champion"),
                model="fraud-model",
                model_version=3,
                time=t,
                latency_ms=1.5,
                inputs=[kw.get("inputs", {"amount": float(i), "country": "FR"})],
                predictions=[i % 2],
                probas=[[0.25, 0.75]],
            )
        )
    return out


def _files(root: Path) -> list[Path]:
    return sorted((root / "predictions").rglob("*.parquet"))


def test_round_trip_schema_and_partitions(tmp_path: Path) -> None:
    t = _now()
    with PredictionLogWriter(str(tmp_path)) as w:
        accepted = w.log(
            records_for_request(
                request_id="req-1",
                endpoint="fraud",
                variant="challenger",
                model="fraud-model",
                model_version=4,
                time=t,
                latency_ms=3.25,
                inputs=[{"amount": 10.5, "country": "FR"}, {"amount": 99.0, "country": "DE"}],
                predictions=[0, 1],
                probas=[[0.9, 0.1], [0.2, 0.8]],
                shadow=True,
                key_hash="k:abc",
            )
        )
        assert accepted == 2
        w.log(_records(3, endpoint="churn"))
    assert w.stats() == {
        "written_records": 5,
        "written_files": 2,
        "dropped_records": 0,
        "flush_errors": 0,
        "buffered": 0,
    }
    files = _files(tmp_path)
    assert {f.parent.parent.name for f in files} == {"endpoint=fraud", "endpoint=churn"}
    assert {f.parent.name for f in files} == {hour_partition(t)}
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600
        assert (f.parent.stat().st_mode & 0o777) == 0o700
    assert not list((tmp_path / "tmp").iterdir())  # no temporary file left

    table = read_predictions(str(tmp_path), "fraud")
    assert table.column_names[: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    assert table.schema.field("time").type == pa.int64()
    assert table.schema.field("in.amount").type == pa.float64()
    assert table.schema.field("proba").type == pa.list_(pa.float64())
    rows = table.to_pylist()
    assert [(r["request_id"], r["row"]) for r in rows] == [("req-1", 0), ("req-1", 1)]
    assert rows[1]["in.country"] == "DE" and rows[1]["prediction"] == 1
    assert rows[1]["proba"] == [0.2, 0.8] and rows[0]["shadow"] is True
    assert rows[0]["variant"] == "challenger" and rows[0]["model_version"] == 4
    assert rows[0]["key_hash"] == "k:abc" and rows[0]["forced"] is False
    assert rows[0]["status"] == 200 and rows[0]["error"] is None
    assert read_predictions(str(tmp_path), "churn").num_rows == 3
    assert read_predictions(str(tmp_path), "nothing-here").num_rows == 0
    only = read_predictions(str(tmp_path), "fraud", columns=["request_id", "in.amount", "nope"])
    assert only.column_names == ["request_id", "in.amount"]


def test_failed_request_is_one_record_without_inputs(tmp_path: Path) -> None:
    with PredictionLogWriter(str(tmp_path)) as w:
        w.log(
            records_for_request(
                request_id="bad",
                endpoint="fraud",
                variant="champion",
                model="fraud-model",
                model_version=None,
                time=_now(),
                latency_ms=0.2,
                inputs=None,
                status=400,
                error="input has no column 'amount'",
            )
        )
    (row,) = read_predictions(str(tmp_path), "fraud").to_pylist()
    assert row["status"] == 400 and row["row"] == 0 and row["model_version"] is None
    assert row["error"] == "input has no column 'amount'" and row["prediction"] is None


def test_redaction_applies_before_anything_is_written(tmp_path: Path) -> None:
    policy = RedactionPolicy.from_rules(
        [
            {"column": "email", "action": "drop"},
            {"column": "customer_id", "action": "hash"},
            {"column": "card_number", "action": "mask", "keep": 4},
        ]
    )
    raw = {"Email": "ana@example.com", "customer_id": 987654321, "card_number": "4111111111111111"}
    calls: list[str] = []

    def policies(endpoint: str) -> RedactionPolicy:
        calls.append(endpoint)
        return policy

    with PredictionLogWriter(str(tmp_path), redaction=policies, redaction_key=SECRET) as w:
        w.log(_records(3, inputs={**raw, "amount": 5.0}))
    assert calls == ["fraud"]
    (f,) = _files(tmp_path)
    data = f.read_bytes()
    for secret in ("ana@example.com", "4111111111111111", "987654321"):
        assert secret.encode() not in data
    table = pq.read_table(f)
    assert "in.Email" not in table.column_names and "in.amount" in table.column_names
    row = table.to_pylist()[0]
    assert row["in.customer_id"] == RedactionKey(SECRET).hash_one(b"987654321")
    assert row["in.card_number"] == "************1111"
    assert "ana@example.com" not in str(table.to_pylist())

    # The control: the same record unredacted does leave its values in the file's bytes
    # (Parquet's column statistics), which is what redacting first prevents.
    plain = tmp_path / "plain"
    with PredictionLogWriter(str(plain)) as w:
        w.log(_records(1, inputs=raw))
    assert b"ana@example.com" in _files(plain)[0].read_bytes()


def test_records_are_dropped_never_written_unredacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hashing = RedactionPolicy.from_rules([{"column": "customer_id", "action": "hash"}])
    caplog.set_level(logging.ERROR, logger="dockyard.serving.predlog")
    # A hash rule and no key: a ConfigError naming the setting, nothing written.
    with PredictionLogWriter(str(tmp_path), redaction={"fraud": hashing}) as w:
        w.log(_records(2, inputs={"customer_id": "cust-123456"}))
        w.flush()
        w.log(_records(2, inputs={"customer_id": "cust-123456"}))
    assert w.written_records == 0 and w.dropped_records == 4 and w.flush_errors == 2
    assert _files(tmp_path) == []
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1  # once per kind
    assert "DOCKYARD_REDACTION_KEY" in messages[0] and "cust-123456" not in messages[0]

    # A policy source that fails (the store is down): dropped too.
    def broken(endpoint: str) -> RedactionPolicy:
        raise RuntimeError("connection refused to db; customer cust-123456")

    caplog.clear()
    with PredictionLogWriter(str(tmp_path), redaction=broken) as w:
        w.log(_records(2, inputs={"customer_id": "cust-123456"}))
    assert w.dropped_records == 2 and _files(tmp_path) == []
    assert all("cust-123456" not in r.getMessage() for r in caplog.records)


def test_encrypted_at_rest_and_reading_needs_the_key(tmp_path: Path) -> None:
    cipher = BlobCipher(EnvKeyProvider(new_key()))
    with PredictionLogWriter(str(tmp_path), cipher=cipher) as w:
        w.log(_records(5, inputs={"amount": 1.0, "email": "secret@example.com"}))
    (f,) = _files(tmp_path)
    data = f.read_bytes()
    assert data.startswith(MAGIC) and b"PAR1" not in data[:64]
    assert b"secret@example.com" not in data and b"fraud-model" not in data
    assert read_predictions(str(tmp_path), "fraud", cipher=cipher).num_rows == 5
    with pytest.raises(ConfigError, match="DOCKYARD_ENCRYPTION_KEY"):
        read_predictions(str(tmp_path), "fraud")
    other = BlobCipher(EnvKeyProvider(new_key()))
    with pytest.raises(ConfigError, match="key"):
        read_predictions(str(tmp_path), "fraud", cipher=other)


class SlowMemoryFileSystem(MemoryFileSystem):
    """An object store whose writes are slow (and, when asked, fail)."""

    protocol = "slowmem"
    delay = 0.0
    fail_next = 0

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" in mode:
            time.sleep(type(self).delay)
            if type(self).fail_next > 0:
                type(self).fail_next -= 1
                raise OSError("the object store is unavailable")
        return super()._open(path, mode, **kwargs)


fsspec.register_implementation("slowmem", SlowMemoryFileSystem, clobber=True)


def test_bounded_buffer_drops_and_counts_under_a_flood() -> None:
    SlowMemoryFileSystem.delay = 0.3
    root = f"slowmem://flood-{uuid.uuid4().hex}"
    w = PredictionLogWriter(root, max_buffer_records=200, flush_records=50, flush_seconds=0.05)
    total, peak = 0, 0
    try:
        for i in range(40):
            batch = _records(100, prefix=f"b{i}-")
            w.log(batch)
            total += len(batch)
            peak = max(peak, w.buffered)
    finally:
        SlowMemoryFileSystem.delay = 0.0
        w.close()
    assert peak <= 200  # memory stays bounded
    assert w.dropped_records > 0
    assert w.written_records + w.dropped_records == total
    assert w.flush_errors == 0
    assert read_predictions(root, "fraud").num_rows == w.written_records


def test_a_failed_write_does_not_stop_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="dockyard.serving.predlog")
    root = f"slowmem://fail-{uuid.uuid4().hex}"
    SlowMemoryFileSystem.fail_next = 1
    w = PredictionLogWriter(root, flush_seconds=0.05)
    try:
        w.log(_records(3, prefix="lost"))
        w.flush()
        assert w.flush_errors == 1 and w.dropped_records == 3
        w.log(_records(4, prefix="kept"))
        deadline = time.monotonic() + 30
        while w.written_records < 4 and time.monotonic() < deadline:  # the thread writes it
            time.sleep(0.02)
        assert w.written_records == 4
    finally:
        SlowMemoryFileSystem.fail_next = 0
        w.close()
    assert len(caplog.records) == 1 and "OSError" in caplog.records[0].getMessage()
    assert "lost" not in caplog.records[0].getMessage()
    assert read_predictions(root, "fraud").num_rows == 4


def test_no_drop_with_many_concurrent_threads_and_asyncio_callers(tmp_path: Path) -> None:
    w = PredictionLogWriter(str(tmp_path), flush_records=1000, flush_seconds=0.05)
    threads, per = 8, 2000

    def work(n: int) -> None:
        for i in range(per):
            w.log(_records(1, prefix=f"t{n}-{i}-"))

    async def tasks() -> None:
        async def one(i: int) -> None:
            w.log(_records(1, prefix=f"a{i}-"))
            await asyncio.sleep(0)

        await asyncio.gather(*(one(i) for i in range(500)))

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    asyncio.run(tasks())
    for t in pool:
        t.join()
    w.close()
    w.close()  # idempotent
    expected = threads * per + 500
    assert w.dropped_records == 0 and w.flush_errors == 0
    assert w.written_records == expected
    table = read_predictions(str(tmp_path), "fraud", columns=["request_id", "row"])
    assert table.num_rows == expected
    assert len(set(table.column("request_id").to_pylist())) == expected
    assert w.log(_records(1)) == 0 and w.dropped_records == 1  # after close: dropped, counted


def test_schema_evolves_across_files(tmp_path: Path) -> None:
    t = _now()
    with PredictionLogWriter(str(tmp_path)) as w:
        w.log(_records(2, t=t, prefix="a", inputs={"x": 1, "n": 1}))
        w.flush()
        w.log(_records(2, t=t, prefix="b", inputs={"x": "one", "n": 2.5, "new": True}))
        w.flush()
        w.log(_records(1, t=t, prefix="c", inputs={"mixed": [1, 2]}))
    assert w.written_files == 3
    table = read_predictions(str(tmp_path), "fraud")
    assert table.schema.field("in.x").type == pa.string()  # int64 vs string: text
    assert table.schema.field("in.n").type == pa.float64()  # int64 and double: widened
    by_id = {r["request_id"]: r for r in table.to_pylist()}
    assert by_id["a0"]["in.x"] == "1" and by_id["b1"]["in.x"] == "one"
    assert by_id["a1"]["in.new"] is None and by_id["b0"]["in.new"] is True
    assert by_id["c0"]["in.mixed"] == [1, 2]


def test_values_of_mixed_kinds_in_one_flush_are_kept_as_text(tmp_path: Path) -> None:
    with PredictionLogWriter(str(tmp_path)) as w:
        w.log(_records(1, prefix="a", inputs={"v": 1}))
        w.log(_records(1, prefix="b", inputs={"v": "x"}))
        w.log(_records(1, prefix="c", inputs={"v": True}))
    values = sorted(read_predictions(str(tmp_path), "fraud").column("in.v").to_pylist())
    assert values == ["1", "true", "x"]


def test_since_until_and_hour_pruning(tmp_path: Path) -> None:
    now = _now()
    times = [now - 5 * HOUR, now - 2 * HOUR, now - HOUR // 2, now]
    with PredictionLogWriter(str(tmp_path)) as w:
        for i, t in enumerate(times):
            w.log(_records(1, t=t, prefix=f"h{i}-"))
    hours = {f.parent.name for f in _files(tmp_path)}
    assert len(hours) >= 3 and hour_partition(times[0]) in hours
    root = str(tmp_path)
    assert read_predictions(root, "fraud").num_rows == 4
    recent = read_predictions(root, "fraud", since=now - 3 * HOUR)
    assert recent.column("request_id").to_pylist() == ["h1-0", "h2-0", "h3-0"]
    window = read_predictions(root, "fraud", since=now - 3 * HOUR, until=now - HOUR // 2)
    assert window.column("request_id").to_pylist() == ["h1-0"]
    assert read_predictions(root, "fraud", since="1h").num_rows == 2
    # A file in a pruned hour is never opened: corrupt it and the query still works.
    old = next(f for f in _files(tmp_path) if f.parent.name == hour_partition(times[0]))
    old.write_bytes(b"garbage")
    assert read_predictions(root, "fraud", since=now - 3 * HOUR).num_rows == 3


def test_parse_time_spec() -> None:
    now = 1_800_000_000_000
    assert parse_time_spec("15m", now_ms=now) == now - 15 * 60_000
    assert parse_time_spec("1h", now_ms=now) == now - HOUR
    assert parse_time_spec("2d", now_ms=now) == now - 48 * HOUR
    assert parse_time_spec("1700000000000") == 1_700_000_000_000
    assert parse_time_spec("2026-05-01") == 1_777_593_600_000
    assert parse_time_spec("2026-05-01T02:00:00+02:00") == 1_777_593_600_000
    assert parse_time_spec(None) is None
    with pytest.raises(InvalidInput, match="--since 'yesterday' is not a time"):
        parse_time_spec("yesterday", option="--since")


def test_memory_root() -> None:
    root = f"memory://predlog-{uuid.uuid4().hex}"
    with PredictionLogWriter(root) as w:
        w.log(_records(7))
    fs = fsspec.filesystem("memory")
    base = root.removeprefix("memory://")
    found = [p for p in fs.find(f"/{base}") if p.endswith(".parquet")]
    assert len(found) == 1 and "/predictions/endpoint=fraud/hour=" in found[0]
    assert not [p for p in fs.find(f"/{base}") if p.endswith(".part")]
    assert read_predictions(root, "fraud").num_rows == 7


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "x\x00y", "", "a\\b"])
def test_endpoint_names_cannot_traverse(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    with PredictionLogWriter(str(root)) as w:
        w.log(_records(2, endpoint=name))
    assert w.written_records == 0 and w.dropped_records == 2 and w.flush_errors == 1
    assert set(os.listdir(tmp_path)) <= {"root"}  # nothing written beside the root
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(InvalidInput, match="endpoint name"):
        read_predictions(str(root), name)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="max_buffer_records"):
        PredictionLogWriter(str(tmp_path), max_buffer_records=0, start=False)
    with pytest.raises(InvalidInput, match="flush_seconds"):
        PredictionLogWriter(str(tmp_path), flush_seconds=0, start=False)


def test_log_never_raises(tmp_path: Path) -> None:
    w = PredictionLogWriter(str(tmp_path), start=False)
    assert w.log(object()) == 0  # type: ignore[arg-type]
    assert w.log([]) == 0
    w.close()


def test_from_settings_uses_the_artifact_root_and_keys(tmp_path: Path) -> None:
    from dockyard.core.config import load_settings

    key = new_key()
    settings = load_settings(
        environ={
            "DOCKYARD_HOME": str(tmp_path),
            "DOCKYARD_ENCRYPTION_KEY": key,
            "DOCKYARD_REDACTION_KEY": SECRET,
            "DOCKYARD_PREDLOG_BUFFER_RECORDS": "1234",
            "DOCKYARD_PREDLOG_FLUSH_SECONDS": "0.25",
        }
    )
    hashing = RedactionPolicy.from_rules([{"column": "customer_id", "action": "hash"}])
    with PredictionLogWriter.from_settings(settings, redaction={"fraud": hashing}) as w:
        assert w.max_buffer_records == 1234 and w.flush_seconds == 0.25
        w.log(_records(1, inputs={"customer_id": 42}))
    (f,) = sorted((tmp_path / "artifacts" / "predictions").rglob("*.parquet"))
    assert f.read_bytes().startswith(MAGIC)
    cipher = BlobCipher(EnvKeyProvider(key))
    (row,) = read_predictions(str(tmp_path / "artifacts"), "fraud", cipher=cipher).to_pylist()
    assert row["in.customer_id"] == RedactionKey(SECRET).hash_one(b"42")
