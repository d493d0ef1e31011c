"""Monitoring end to end on the real store (SQLite and PostgreSQL) and prediction log.

A model is trained and logged with its training data through the SDK (so its reference profile
is stored by ``log_input``), registered, approved and deployed. Prediction-log records are
written with the real writer: a first, undrifted window (the prediction baseline), then a
window whose ``amount`` is shifted and where a new category appears, and an undrifted control
window. Labels arrive for part of the traffic. The monitor must flag exactly the shifted
feature (and not on the control window), report the unseen category, measure performance on
the labeled rows with the coverage, store the run, its series and its events, render a
report, expose Prometheus text that prometheus_client parses, and the scheduler must evaluate
each aligned window once even with two replicas.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dockyard as dy
from dockyard.backend import Backend
from dockyard.cli.main import main
from dockyard.core.entities import AuditQuery
from dockyard.core.errors import InvalidInput, NotFound, PermissionDenied
from dockyard.governance.audit import Actor
from dockyard.governance.permissions import Authorizer
from dockyard.monitoring.service import MonitorScheduler
from dockyard.serving.labels import LabelService, LabelStore
from dockyard.serving.predlog import PredictionLogWriter, PredictionRecord

ME = Actor("tester")
HOUR = 3_600_000
# Aligned on an hour: the baseline window, the drifted window and the control window.
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BASE, DRIFTED, CONTROL = T0, T0 + 2 * HOUR, T0 + 3 * HOUR
FEATURES = ["amount", "age", "channel"]


def _frame(n: int, seed: int, shift: float = 0.0, new_channel: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channels = ["pos", "online", "atm"] + (["crypto"] if new_channel else [])
    probs = [0.5, 0.3, 0.2] if not new_channel else [0.4, 0.25, 0.15, 0.2]
    x = pd.DataFrame(
        {
            "amount": rng.normal(0.0, 1.0, n) + shift,
            "age": rng.normal(40.0, 10.0, n),
            "channel": rng.choice(channels, size=n, p=probs),
        }
    )
    noise = rng.normal(0.0, 0.5, n)
    x["is_fraud"] = ((x["amount"] - shift) + 0.02 * (x["age"] - 40) + noise > 0.8).astype(int)
    return x


def _model() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"])], remainder="passthrough"
    )
    return Pipeline([("pre", pre), ("lr", LogisticRegression(max_iter=500))])


@pytest.fixture
def world(sdk_store: Path) -> dict[str, Any]:
    """fraud/1 trained, logged with its training profile, approved and serving ``fraud``."""
    from dockyard.client.client import Client, _local_backend

    train = _frame(3000, 0)
    model = _model().fit(train[FEATURES], train["is_fraud"])
    with dy.start_run(experiment="monitoring", name="train") as run:
        dy.log_input(train, name="transactions", context="training")
        dy.log_model(model, "model", input_example=train[FEATURES].head(3))
    client = Client()
    backend: Backend = _local_backend(client.settings)
    reg = backend.registry(ME)
    reg.create_model_version("fraud", f"runs:/{run.run_id}/model")
    reg.transition("fraud", 1, "approved", override_gate=True, reason="test")
    backend.endpoints(ME).deploy("fraud", "fraud/1")
    return {"backend": backend, "model": model, "home": sdk_store, "run_id": run.run_id}


def _log(
    backend: Backend, model: Any, frame: pd.DataFrame, t0: int, *, variant: str = "fraud-1"
) -> list[tuple[str, int]]:
    """Log ``frame`` as requests of 10 rows from ``t0`` on; returns (request_id, row) keys."""
    proba = model.predict_proba(frame[FEATURES])
    pred = model.predict(frame[FEATURES])
    writer = PredictionLogWriter(backend.artifacts.root_uri, cipher=backend.artifacts.cipher)
    keys = []
    records = []
    for start in range(0, len(frame), 10):
        rid = uuid.uuid4().hex
        for row, i in enumerate(range(start, min(start + 10, len(frame)))):
            keys.append((rid, row))
            records.append(
                PredictionRecord(
                    request_id=rid,
                    endpoint="fraud",
                    variant=variant,
                    model="fraud",
                    model_version=1,
                    time=t0 + i * 1000,
                    latency_ms=3.0,
                    inputs={c: frame[c].iloc[i] for c in FEATURES},
                    prediction=int(pred[i]),
                    proba=[float(p) for p in proba[i]],
                    row=row,
                )
            )
    writer.log(records)
    writer.close()
    assert writer.dropped_records == 0
    return keys


def _logged_world(world: dict[str, Any]) -> dict[str, Any]:
    backend, model = world["backend"], world["model"]
    _log(backend, model, _frame(600, 1), BASE)
    drifted = _frame(800, 2, shift=1.5, new_channel=True)
    keys = _log(backend, model, drifted, DRIFTED)
    _log(backend, model, _frame(800, 3), CONTROL)
    # labels for 60 % of the drifted traffic, one of them sent twice (the later one counts)
    n = int(len(keys) * 0.6)
    rows = [
        {"request_id": rid, "row": row, "label": int(drifted["is_fraud"].iloc[i])}
        for i, (rid, row) in enumerate(keys[:n])
    ]
    labels = LabelService(
        backend.store, LabelStore(backend.artifacts.root_uri, backend.artifacts.cipher), ME
    )
    labels.ingest("fraud", [{**rows[0], "label": 1 - rows[0]["label"]}])
    labels.ingest("fraud", rows)
    return {**world, "drifted": drifted, "labeled": n}


def test_a_drifted_window_is_flagged_and_a_control_window_is_not(world: dict[str, Any]) -> None:
    w = _logged_world(world)
    backend = w["backend"]
    service = backend.monitoring(ME)
    run = service.run("fraud", since=DRIFTED, until=DRIFTED + HOUR, now=CONTROL + 2 * HOUR)
    res = run.result
    assert run.status == "ok" and run.rows == 800
    drift = res["drift"]
    assert drift["drifted_columns"] == ["amount", "channel"]
    assert drift["features"]["age"]["drifted"] is False
    assert set(drift["features"]) == set(FEATURES)  # the signature's inputs, not the label
    assert drift["dataset_drift"] is True  # 2 of 3 >= 0.5
    # the model's outputs drifted too, against its first window in production
    assert drift["prediction"]["drifted"] is True
    assert drift["features"]["amount"]["distribution"]["kind"] == "bins"
    # data quality: the new category, with examples
    issues = {(i["column"], i["check"]) for i in res["quality"]["issues"]}
    assert ("channel", "unseen_category") in issues or ("channel", "unseen") in issues
    assert "crypto" in json.dumps(res["quality"]["columns"]["channel"])
    # performance on the labeled rows, equal to sklearn's on the same rows
    from sklearn.metrics import accuracy_score

    perf = res["performance"]["variants"]["fraud-1"]
    assert perf["labeled"] == w["labeled"] and perf["coverage"] == pytest.approx(0.6, abs=0.01)
    d = w["drifted"].iloc[: w["labeled"]]
    expected = accuracy_score(d["is_fraud"], w["model"].predict(d[FEATURES]))
    assert perf["metrics"]["accuracy"] == pytest.approx(expected)
    assert res["alerts"] and res["alerts"][0]["event"] == "drift.detected"

    control = service.run("fraud", since=CONTROL, until=CONTROL + HOUR, now=CONTROL + 2 * HOUR)
    assert control.status == "ok" and control.result["drift"]["drifted_columns"] == []
    assert control.dataset_drift is False and control.result["quality"]["n_issues"] == 0

    # stored: runs, series, events, the audit trail
    runs = service.list_runs("fraud")
    assert [r.id for r in runs] == [control.id, run.id]
    points = service.series("fraud", metrics=["drift_score"], feature="amount")
    assert [p["run_id"] for p in points] == [run.id, control.id]
    events = service.events(endpoint="fraud")
    assert [e.kind for e in events] == ["drift.detected", "quality.issues"]
    assert events[0].payload["drifted_columns"] == ["amount", "channel"]
    assert service.events(after_id=events[-1].id) == []
    audit = backend.store.read(lambda u: u.list_audit(AuditQuery(action="monitor.run"), 10, 0))
    assert len(audit) == 2 and {a.details["run_id"] for a in audit} == {run.id, control.id}

    # the report of the drifted run: a page with plots, and the over-time view
    html = service.report(run)
    assert html.lstrip().lower().startswith("<!doctype html") and "<svg" in html
    assert json.loads(service.report(run, fmt="json"))["drift"]["dataset_drift"] is True


def test_windows_without_enough_rows_and_bad_input(world: dict[str, Any]) -> None:
    backend = world["backend"]
    _log(backend, world["model"], _frame(20, 5), BASE)
    service = backend.monitoring(ME)
    empty = service.run("fraud", since=CONTROL, until=CONTROL + HOUR)
    assert empty.status == "no_data" and empty.result["drift"] is None
    few = service.run("fraud", since=BASE, until=BASE + HOUR)
    assert few.status == "insufficient" and few.result["quality"]["rows"] == 20
    with pytest.raises(InvalidInput, match="window"):
        service.run("fraud", window="soon")
    with pytest.raises(InvalidInput, match="empty"):
        service.run("fraud", since=CONTROL, until=BASE)
    with pytest.raises(NotFound):
        service.run("nope", window="1h")
    with pytest.raises(InvalidInput, match=r"tests\.amount"):
        service.declare("fraud", "m", {"tests": {"amount": "magic"}})
    with pytest.raises(InvalidInput, match="spec"):
        service.declare("fraud", "m", {"windw": "1h"})
    viewer = Actor("vic", authorizer=_viewer(backend))
    with pytest.raises(PermissionDenied):
        backend.monitoring(viewer).run("fraud", window="1h")  # storing needs endpoint:deploy


def _viewer(backend: Backend) -> Authorizer:
    ids = backend.identity(ME)
    ids.create_user("tester", roles=["admin"])
    ids.create_user("vic", roles=["viewer"])
    return Authorizer.local(backend.store, "vic")


def test_the_scheduler_runs_each_aligned_window_once_across_replicas(
    world: dict[str, Any],
) -> None:
    w = _logged_world(world)
    backend = w["backend"]
    service = backend.monitoring(ME)
    mon = service.declare("fraud", "hourly", {"window": "1h"})
    assert mon.version == 1 and mon.enabled
    one = MonitorScheduler(backend)
    two = MonitorScheduler(backend)
    two.loop.holder = "replica-2"
    now = CONTROL + HOUR + 5 * 60_000  # 5 minutes after the control window closed
    # declared "now" (the real clock); here it is due since the drifted window, and its
    # first window is that one
    backend.store.write(
        lambda u: u.claim_monitor("fraud", "hourly", seen_next_run=mon.next_run, next_run=DRIFTED)
    )
    backend.store.write(lambda u: u.set_monitor_window_end("fraud", "hourly", DRIFTED))
    first = one.run_once(now)
    assert [(r.window_start, r.monitor) for r in first] == [
        (DRIFTED, "hourly"),
        (CONTROL, "hourly"),
    ]
    assert two.run_once(now) == []  # the lease is held
    assert one.run_once(now) == []  # next_run is an hour away
    stored = service.get_monitor("fraud", "hourly")
    assert stored.last_window_end == CONTROL + HOUR and stored.next_run == now + HOUR
    html = service.report(first[-1])
    assert "<svg" in html  # with two windows, the over-time plot
    text = service.metrics_text().decode()
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(text)}
    drifted = {
        s.labels["feature"]: s.value for s in fams["dockyard_monitor_feature_drifted"].samples
    }
    assert drifted["age"] == 0.0 and "amount" in drifted
    assert fams["dockyard_monitor_rows"].samples[0].value == 800


def test_the_cli_runs_stores_and_writes_a_report(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _logged_world(world)
    out = tmp_path / "reports" / "fraud.html"
    code = main(
        [
            "monitor",
            "run",
            "--endpoint",
            "fraud",
            "--since",
            str(DRIFTED),
            "--until",
            str(DRIFTED + HOUR),
            "--report",
            str(out),
        ]
    )
    text = capsys.readouterr()
    assert code == 0, text.err
    assert "amount" in text.out and out.is_file() and "<svg" in out.read_text()
    assert main(["monitor", "runs", "--endpoint", "fraud", "--json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["dataset_drift"] is True and summary["n_drifted"] == 2
    assert (
        main(["monitor", "report", "--endpoint", "fraud", "--out", str(tmp_path / "r.json")]) == 0
    )
    assert json.loads((tmp_path / "r.json").read_text())["drift"]["n_drifted"] == 2
    code = main(["monitor", "declare", "fraud", "m1", "--test", "amount=psi:0.3", "--json"])
    assert code != 0  # no such option: a usage error, not a traceback
    assert main(["monitor", "declare", "fraud", "m1", "--test", "amount=psi:0.3"]) == 0
    assert main(["monitor", "declare", "fraud", "m2", "--test", "amount"]) == 2
    assert "COLUMN=TEST" in capsys.readouterr().err
    assert main(["monitor", "list", "--json"]) == 0
    [m1] = json.loads(capsys.readouterr().out)
    assert m1["spec"]["tests"] == {"amount": ["psi", 0.3]}


ADMIN_TOKEN = "dy_monitoring-admin-" + "m" * 40


def test_the_rest_routes(world: dict[str, Any], db_url: str) -> None:
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning  # type: ignore[attr-defined]

    from dockyard.core.config import load_settings
    from dockyard.server.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    _logged_world(world)
    overrides = {
        "home": str(world["home"]),
        "db_url": db_url,
        "auth": "on",
        "canary_interval": 0,
        "monitor_interval": 0,
    }
    app = create_app(load_settings(overrides=overrides, environ={}), admin_token=ADMIN_TOKEN)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    api = "/api/v1"
    with TestClient(app) as c:
        ids = app.state.backend.identity(Actor("admin"))
        ids.create_user("vic", roles=["viewer"])
        vic = {"Authorization": f"Bearer {ids.create_token('vic').secret}"}
        body = {"since": DRIFTED, "until": DRIFTED + HOUR}
        r = c.post(f"{api}/endpoints/fraud/monitoring/runs", json=body, headers=vic)
        assert r.status_code == 403, r.text  # storing a run needs endpoint:deploy
        r = c.post(
            f"{api}/endpoints/fraud/monitoring/runs", json={**body, "record": False}, headers=vic
        )
        assert r.status_code == 200 and r.json()["result"]["drift"]["n_drifted"] == 2
        r = c.post(f"{api}/endpoints/fraud/monitoring/runs", json=body, headers=admin)
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        r = c.get(f"{api}/endpoints/fraud/monitoring/runs", headers=vic)
        assert [x["id"] for x in r.json()["items"]] == [run_id]
        r = c.get(f"{api}/monitoring/runs/{run_id}/report", headers=vic)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src" not in r.headers["content-security-policy"]
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "<svg" in r.text
        r = c.get(f"{api}/monitoring/runs/{run_id}/report?format=pdf", headers=vic)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
        r = c.get(f"{api}/monitoring/runs/not-a-uuid", headers=vic)
        assert r.status_code == 422 and "run id" in r.json()["error"]["message"]
        r = c.get(f"{api}/monitoring/events?endpoint=fraud", headers=vic)
        assert [e["kind"] for e in r.json()["items"]] == ["drift.detected", "quality.issues"]
        r = c.get(f"{api}/endpoints/fraud/monitoring/series?metric=drift_score", headers=vic)
        assert {p["feature"] for p in r.json()["items"]} >= set(FEATURES)
        r = c.get(f"{api}/monitoring/metrics", headers=vic)
        assert r.status_code == 200 and "dockyard_monitor_dataset_drift" in r.text
        # declaring: a reference file is refused over the API; webhooks are checked
        spec = {"window": "1h", "reference": "/etc/passwd"}
        r = c.put(f"{api}/endpoints/fraud/monitors/hourly", json={"spec": spec}, headers=admin)
        assert r.status_code == 422 and "reference" in r.json()["error"]["message"]
        hook = {"window": "1h", "webhooks": [{"url": "http://127.0.0.1:9/hook"}]}
        r = c.put(f"{api}/endpoints/fraud/monitors/hourly", json={"spec": hook}, headers=admin)
        assert r.status_code == 422 and "loopback" in r.json()["error"]["message"]
        r = c.put(
            f"{api}/endpoints/fraud/monitors/hourly", json={"spec": {"window": "1h"}}, headers=vic
        )
        assert r.status_code == 403
        r = c.put(
            f"{api}/endpoints/fraud/monitors/hourly",
            json={"spec": {"window": "1h", "min_rows": 10}},
            headers=admin,
        )
        assert r.status_code == 201 and r.json()["version"] == 1
        r = c.get(f"{api}/endpoints/fraud/monitors", headers=vic)
        assert [m["name"] for m in r.json()["items"]] == ["hourly"]
        assert c.delete(f"{api}/endpoints/fraud/monitors/hourly", headers=admin).status_code == 204


def test_a_drift_event_reaches_a_signed_webhook(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from dockyard.monitoring.alerts import verify_signature

    got: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCKYARD_WEBHOOK_SECRET", "s3cret")
    try:
        w = _logged_world(world)
        backend = w["backend"]
        service = backend.monitoring(ME)
        url = f"http://127.0.0.1:{server.server_port}/hook?token=abc"
        with pytest.raises(InvalidInput, match="loopback"):
            service.declare("fraud", "hourly", {"webhooks": [{"url": url}]})
        hook = {"url": url, "allow_private": True, "events": ["drift.detected"]}
        mon = service.declare("fraud", "hourly", {"window": "1h", "webhooks": [hook]})
        assert "token" not in json.dumps(mon.public_dict())
        backend.store.write(
            lambda u: u.claim_monitor("fraud", "hourly", seen_next_run=mon.next_run, next_run=0)
        )
        backend.store.write(lambda u: u.set_monitor_window_end("fraud", "hourly", DRIFTED))
        runs = MonitorScheduler(backend).run_once(DRIFTED + HOUR + 60_000)
        assert [r.dataset_drift for r in runs] == [True]
        # the scheduler's pass delivered it: one signed POST, the drift event only
        assert len(got) == 1
        headers, body = got[0]
        assert headers["X-Dockyard-Event"] == "drift.detected"
        assert verify_signature(
            "s3cret",
            int(headers["X-Dockyard-Timestamp"]),
            body,
            headers["X-Dockyard-Signature"],
            tolerance_s=10**9,
        )
        payload = json.loads(body)
        assert payload["data"]["drifted_columns"] == ["amount", "channel"]
        [delivery] = backend.store.read(lambda u: u.list_deliveries())
        assert delivery.status == "delivered" and "abc" not in json.dumps(delivery.to_dict())
    finally:
        server.shutdown()
