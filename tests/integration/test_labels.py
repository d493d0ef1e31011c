"""Ground-truth labels: the store (latest wins, join, validation, encryption), the service
(permission, audit) and the `dockyard logs` / `dockyard labels` commands, on a real store."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dockyard.artifacts.crypto import MAGIC, BlobCipher, EnvKeyProvider, new_key
from dockyard.backend import Backend
from dockyard.cli.main import main
from dockyard.core.errors import ConfigError, InvalidInput, NotFound, PermissionDenied
from dockyard.governance.audit import Actor
from dockyard.governance.permissions import PERMISSION_ATTR, public_methods
from dockyard.serving.labels import LABEL_PERMISSIONS, LabelService, LabelStore, join_labels
from dockyard.serving.predlog import PredictionLogWriter, read_predictions, records_for_request


def _log(root: str, n: int, *, rows: int = 1, t: int | None = None, **kw: Any) -> None:
    t = int(time.time() * 1000) if t is None else t
    with PredictionLogWriter(root, **kw) as w:
        for i in range(n):
            w.log(
                records_for_request(
                    request_id=f"req-{i}",
                    endpoint="fraud",
                    variant="champion" if i % 2 else "challenger",
                    model="fraud-model",
                    model_version=1 + i % 2,
                    time=t + i,
                    latency_ms=2.0 + i,
                    inputs=[{"amount": float(i * 10 + r), "country": "FR"} for r in range(rows)],
                    predictions=[i % 2] * rows,
                    probas=[[0.4, 0.6]] * rows,
                    status=500 if i == 3 else 200,
                )
            )


def test_latest_label_wins_and_joins_by_request_id_and_row(tmp_path: Path) -> None:
    root = str(tmp_path)
    _log(root, 4, rows=2)
    store = LabelStore(root)
    r1 = store.ingest("fraud", [("req-0", 1), ("req-0", 0, 1), ("req-1", 0), ("req-2", 1)])
    assert (r1.count, r1.files) == (4, 1)
    # A correction, as a dict and with a duplicate within the batch: the last one wins.
    store.ingest(
        "fraud",
        [{"request_id": "req-2", "label": 0}, {"request_id": "req-2", "label": 1, "row": 0}],
        ingested_by="pipeline",
    )
    store.ingest("fraud", [("req-1", 1)])
    labels = store.read_labels("fraud")
    got = {(r["request_id"], r["row"]): r["label"] for r in labels.to_pylist()}
    assert got == {("req-0", 0): 1, ("req-0", 1): 0, ("req-1", 0): 1, ("req-2", 0): 1}
    assert labels.num_rows == 4
    assert store.read_all("fraud").num_rows == 7  # append-only: nothing was rewritten

    joined = join_labels(read_predictions(root, "fraud"), labels)
    assert joined.num_rows == 8 and "proba" in joined.column_names
    pairs = [(r["request_id"], r["row"], r["label"]) for r in joined.to_pylist()]
    assert pairs == [
        ("req-0", 0, 1),
        ("req-0", 1, 0),
        ("req-1", 0, 1),
        ("req-1", 1, None),
        ("req-2", 0, 1),
        ("req-2", 1, None),
        ("req-3", 0, None),
        ("req-3", 1, None),
    ]
    # Joining again replaces the label column.
    again = join_labels(joined, labels)
    assert again.column_names.count("label") == 1
    assert LabelStore(root).read_labels("other").num_rows == 0


def test_ingest_forms_csv_parquet_dataframe(tmp_path: Path) -> None:
    import pandas as pd

    store = LabelStore(str(tmp_path))
    csv = tmp_path / "labels.csv"
    csv.write_text("id,y,row\n007,yes,0\n008,no,\n009,yes,2\n")
    res = store.ingest("fraud", csv, id_column="id", label_column="y")
    assert res.count == 3
    got = {(r["request_id"], r["row"]): r["label"] for r in store.read_labels("fraud").to_pylist()}
    # Ids stay text (leading zeros kept); an empty row number means row 0.
    assert got == {("007", 0): "yes", ("008", 0): "no", ("009", 2): "yes"}
    store.ingest("churn", pd.DataFrame({"request_id": ["a", "b"], "label": [0.5, 1.5]}))
    store.ingest("churn", pa.table({"request_id": ["c"], "label": [2.5]}))
    store.ingest("churn", {"d": 3.5, "e": 4})  # request id -> label
    store.ingest("churn", {"request_id": ["f"], "label": [5.5], "row": [1]})  # columns
    got = store.read_labels("churn").to_pylist()
    assert [(r["request_id"], r["row"], r["label"]) for r in got] == [
        ("a", 0, 0.5),
        ("b", 0, 1.5),
        ("c", 0, 2.5),
        ("d", 0, 3.5),
        ("e", 0, 4.0),
        ("f", 1, 5.5),
    ]


def test_bad_labels_are_refused_naming_row_and_column(tmp_path: Path) -> None:
    store = LabelStore(str(tmp_path))
    csv = tmp_path / "bad.csv"
    csv.write_text("request_id,label\nr1,1\n,0\nr3,1\n")
    with pytest.raises(InvalidInput, match=r"row 2 \(line 3\) has an empty request id"):
        store.ingest("fraud", csv)
    csv.write_text("rid,label\nr1,1\n")
    with pytest.raises(InvalidInput, match=r"no column 'request_id'.*'rid'.*--id-column"):
        store.ingest("fraud", csv)
    csv.write_text("request_id,label\nr1,1\nr2,\n")
    with pytest.raises(InvalidInput, match=r"row 2 \(line 3\) has no label"):
        store.ingest("fraud", csv)
    with pytest.raises(InvalidInput, match="row 2: a label is one scalar"):
        store.ingest("fraud", [("r1", 1), ("r2", [1, 2])])
    with pytest.raises(InvalidInput, match="row 1 must be"):
        store.ingest("fraud", ["r1"])
    with pytest.raises(InvalidInput, match="holds list"):
        store.ingest("fraud", pa.table({"request_id": ["a"], "label": [[1]]}))
    with pytest.raises(InvalidInput, match="negative row number"):
        store.ingest("fraud", [("r1", 1, -1)])
    with pytest.raises(InvalidInput, match="endpoint name"):
        store.ingest("../etc", [("r1", 1)])
    with pytest.raises(NotFound):
        store.ingest("fraud", tmp_path / "missing.csv")
    # Nothing half-written: no label stored, no temporary file left.
    assert store.read_all("fraud").num_rows == 0
    assert not (tmp_path / "tmp").exists() or list((tmp_path / "tmp").iterdir()) == []


def test_a_failing_large_file_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dockyard.serving.labels as labels_module

    monkeypatch.setattr(labels_module, "BATCH_ROWS", 10)
    rows = [(f"r{i}", i % 2) for i in range(35)] + [("", 1)]
    store = LabelStore(str(tmp_path))
    import pyarrow.parquet as pq

    big = tmp_path / "big.parquet"
    pq.write_table(pa.table({"request_id": [r[0] for r in rows], "label": [1] * 36}), big)
    seen: list[int] = []
    with pytest.raises(InvalidInput, match="row 36 has an empty request id"):
        store.ingest("fraud", big, progress=seen.append)
    assert seen == [10, 20, 30]  # three batches were staged, then thrown away
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "labels").exists() or not list((tmp_path / "labels").rglob("*.parquet"))
    with pytest.raises(InvalidInput, match="row 36 has an empty request id"):
        store.ingest("fraud", pa.table({"request_id": [r[0] for r in rows], "label": [1] * 36}))
    seen.clear()
    res = store.ingest(
        "fraud",
        pa.table({"request_id": [r[0] for r in rows[:-1]], "label": [r[1] for r in rows[:-1]]}),
        progress=seen.append,
    )
    assert res.count == 35 and res.files == 4 and seen == [10, 20, 30, 35]
    assert store.read_labels("fraud").num_rows == 35


def test_labels_encrypted_at_rest(tmp_path: Path) -> None:
    cipher = BlobCipher(EnvKeyProvider(new_key()))
    LabelStore(str(tmp_path), cipher).ingest("fraud", [("req-secret", "fraudulent")])
    (f,) = (tmp_path / "labels").rglob("*.parquet")
    assert f.read_bytes().startswith(MAGIC) and b"fraudulent" not in f.read_bytes()
    assert LabelStore(str(tmp_path), cipher).read_labels("fraud").num_rows == 1
    with pytest.raises(ConfigError, match="DOCKYARD_ENCRYPTION_KEY"):
        LabelStore(str(tmp_path)).read_labels("fraud")


def test_memory_root_labels() -> None:
    store = LabelStore(f"memory://labels-{uuid.uuid4().hex}")
    store.ingest("fraud", [("a", 1), ("b", 0)])
    assert store.read_labels("fraud").num_rows == 2


def test_service_permissions_and_audit(backend: Backend, tmp_path: Path) -> None:
    assert sorted(LABEL_PERMISSIONS) == public_methods(LabelService)
    for name in public_methods(LabelService):
        assert getattr(getattr(LabelService, name), PERMISSION_ATTR) == LABEL_PERMISSIONS[name]
    ids = backend.identity(Actor("someone"))
    ids.create_user("root", roles=["admin"])
    ids = backend.identity(Actor("root"))
    ids.create_user("dee")
    ids.grant("dee", "deployer", "endpoint", "fraud")
    ids.create_user("vic", roles=["viewer"])
    store = LabelStore(str(tmp_path / "artifacts"))

    def svc(name: str) -> LabelService:
        return LabelService(backend.store, store, Actor(name))

    res = svc("dee").ingest("fraud", [("r1", "fraudulent-label-value")], source="labels.csv")
    assert res.count == 1
    with pytest.raises(PermissionDenied):
        svc("dee").ingest("other", [("r1", 1)])
    with pytest.raises(PermissionDenied):
        svc("vic").ingest("fraud", [("r1", 1)])
    assert svc("vic").read("fraud").column("label").to_pylist() == ["fraudulent-label-value"]
    assert svc("vic").read("fraud").column("ingested_by").to_pylist() == ["dee"]
    events = backend.tracking(Actor("root")).list_audit_events(action="labels.ingest")
    assert len(events) == 1
    (event,) = events
    assert (event.actor, event.resource_type, event.resource_id) == ("dee", "endpoint", "fraud")
    assert event.details == {"count": 1, "files": 1, "source": "labels.csv"}
    assert "fraudulent-label-value" not in json.dumps(event.details)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_logs_query_stats_and_labels_ingest(
    sdk_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(sdk_store / "artifacts")
    _log(root, 6)
    _log(root, 1, t=int(time.time() * 1000) - 5 * 3_600_000)  # older than --since 1h

    code, out, err = run_cli(capsys, "logs", "query", "--endpoint", "fraud", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["request_id"] for r in rows] == [f"req-{i}" for i in range(5, -1, -1)]
    assert rows[0]["in.amount"] == 50.0 and rows[0]["proba"] == [0.4, 0.6]

    code, out, err = run_cli(capsys, "logs", "query", "-e", "fraud", "--limit", "2")
    assert code == 0, err
    assert "req-5" in out and "req-4" in out and "req-3" not in out and "amount" in out
    assert "2 newest of 6" in out

    code, out, _ = run_cli(capsys, "logs", "query", "-e", "fraud", "--since", "1d", "--json")
    assert code == 0 and len(json.loads(out)) == 7

    csv = sdk_store / "out.csv"
    code, out, err = run_cli(capsys, "logs", "query", "-e", "fraud", "--csv", str(csv))
    assert code == 0, err
    assert "6 records written" in out and len(csv.read_text().splitlines()) == 7

    code, out, err = run_cli(capsys, "logs", "stats", "-e", "fraud", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["records"] == 7
    assert sum(g["records"] for g in stats["groups"]) == 7
    assert {(g["variant"], g["status"]) for g in stats["groups"]} >= {
        ("champion", 500),
        ("challenger", 200),
    }
    code, out, err = run_cli(capsys, "logs", "stats", "-e", "fraud")
    assert code == 0 and "champion" in out and "500" in out

    code, _, err = run_cli(capsys, "logs", "query", "-e", "../x")
    assert code == 2 and "endpoint name" in err
    code, _, err = run_cli(capsys, "logs", "query", "-e", "fraud", "--since", "soon")
    assert code == 2 and "--since 'soon' is not a time" in err

    labels = sdk_store / "labels.csv"
    labels.write_text("rid,truth\n" + "".join(f"req-{i},{i % 2}\n" for i in range(4)))
    code, out, err = run_cli(
        capsys,
        "labels",
        "ingest",
        str(labels),
        "--endpoint",
        "fraud",
        "--id-column",
        "rid",
        "--label-column",
        "truth",
    )
    assert code == 0, err
    assert "4 labels of endpoint fraud stored" in out
    code, _, err = run_cli(capsys, "labels", "ingest", str(labels), "-e", "fraud")
    assert code == 2 and "no column 'request_id'" in err and "Traceback" not in err

    joined = join_labels(read_predictions(root, "fraud"), LabelStore(root).read_labels("fraud"))
    assert joined.column("label").null_count == 2  # req-4 and req-5
    assert read_predictions(root, "fraud").num_rows == 7
