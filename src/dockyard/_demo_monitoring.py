"""The demo's monitoring step: drifted production traffic, late labels, a monitor run, a report.

With the endpoint ``fraud`` serving, the demo turns the synthetic world's drift knob to
``DRIFT`` (bigger amounts, more online traffic, lower device trust, a new merchant category,
and fraud that looks different), sends those transactions through the inference server in
small batches with its own request ids, then ingests the ground truth for most of them -- the
labels arrive late and not all at once, as in production. A monitor run compares that window
with the champion's training-data profile: it flags the drifted features and the prediction
drift, counts data-quality issues (the unseen category), measures performance on the labeled
rows with the coverage, estimates it on the rest, and writes the HTML report whose path is
printed.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.backend import Backend
    from dockyard.governance.audit import Actor

ENDPOINT = "fraud"
LABEL = "is_fraud"
#: How far the world has moved since training (0 = the training world, 1 = fully drifted).
DRIFT = 0.9
_ROWS = 1_200
_BATCH = 20
#: Share of the drifted traffic whose label has arrived when the monitor runs.
_LABELED_SHARE = 0.7


def drift_and_monitor(
    backend: Backend, actor: Actor, url: str, home: Path, seed: int = 0
) -> dict[str, Any]:
    """Send drifted traffic to ``url``, ingest most labels, run the monitor, write the report.
    Returns the run's summary with the report path."""
    import numpy as np
    from rich.console import Console

    from dockyard.data.synthetic import make_fraud_transactions
    from dockyard.monitoring.report import render_rich, write_report
    from dockyard.serving.labels import LabelService, LabelStore

    console = Console(stderr=True)
    frame = make_fraud_transactions(_ROWS, random_state=seed + 101, drift=DRIFT)
    labels = frame[LABEL].to_numpy()
    # what a client sends: the transaction's features (ids and timestamps stay with it)
    features = frame.drop(columns=[LABEL, "transaction_id", "timestamp"], errors="ignore")
    records = json.loads(features.to_json(orient="records"))
    started = int(time.time() * 1000)
    ids = _send(url, records)
    _wait_logged(backend, started, len(records))

    rng = np.random.default_rng(seed)
    rows = [
        {"request_id": rid, "row": row, "label": int(labels[i])}
        for i, (rid, row) in enumerate(ids)
        if rng.random() < _LABELED_SHARE
    ]
    store = LabelStore(backend.artifacts.root_uri, backend.artifacts.cipher)
    LabelService(backend.store, store, actor).ingest(ENDPOINT, rows, source="dockyard demo")

    service = backend.monitoring(actor)
    run = service.run(ENDPOINT, since=started, until=int(time.time() * 1000) + 1)
    console.print(render_rich(run.result))
    reports = home / "reports"
    path = write_report(
        run.result, reports / f"{ENDPOINT}-{run.id[:8]}.html", history=None, fmt="html"
    )
    console.print(
        f"monitor run {run.id}: {len(records)} drifted requests (drift knob {DRIFT}), "
        f"{len(rows)} labels arrived; report: [bold]{path}[/]"
    )
    return {
        "run_id": run.id,
        "dataset_drift": run.dataset_drift,
        "drifted": list((run.result.get("drift") or {}).get("drifted_columns") or []),
        "labels": len(rows),
        "report": str(path),
    }


def _send(url: str, records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Batches of ``_BATCH`` rows, 4 at a time, each with our request id; (id, row) per row."""
    import httpx

    batches = [records[i : i + _BATCH] for i in range(0, len(records), _BATCH)]
    rids = [f"demo-{uuid.uuid4().hex[:12]}" for _ in batches]

    def send(client: httpx.Client, k: int) -> None:
        r = client.post(
            f"{url}/endpoints/{ENDPOINT}/predict",
            json=batches[k],
            headers={"X-Request-Id": rids[k], "X-Dockyard-Key": rids[k]},
        )
        r.raise_for_status()

    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: send(client, k), range(len(batches))))
    return [(rids[k], row) for k, batch in enumerate(batches) for row in range(len(batch))]


def _wait_logged(backend: Backend, since: int, rows: int) -> None:
    """Until the prediction log holds the ``rows`` live rows sent since ``since``."""
    from dockyard._demo_serving import wait_logged

    def done(table: Any) -> bool:
        return table.num_rows > 0 and sum(not s for s in table["shadow"].to_pylist()) >= rows

    wait_logged(backend, since, ["request_id", "shadow"], done)
