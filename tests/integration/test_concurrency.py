"""Several processes writing the same run at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dockyard.core.config import Settings
from dockyard.tracking.service import TrackingService

WRITERS = 8
POINTS = 5_000

_CHILD = textwrap.dedent(
    """
    import sys, time
    import dockyard as dy

    run_id, writer, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    start_at = float(sys.argv[4])
    dy.start_run(run_id=run_id)
    while time.time() < start_at:  # start together, so the writers really contend
        time.sleep(0.001)
    for i in range(points):
        dy.log_metric("loss", writer * 1_000_000 + i, step=i)
    dy.flush()
    """
)


@pytest.mark.slow
def test_eight_processes_log_40000_points_into_one_run(
    service: TrackingService, settings: Settings, tmp_path: Path
) -> None:
    run = service.start_run(None, name="contended")
    env = {
        **os.environ,
        "DOCKYARD_HOME": str(tmp_path),
        "DOCKYARD_DB_URL": settings.resolved_db_url,
        "DOCKYARD_METRIC_BATCH_SIZE": "250",  # many small transactions: more contention
        "DOCKYARD_METRIC_FLUSH_SECONDS": "0.05",
    }
    env.pop("DOCKYARD_TRACKING_URI", None)
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, run.run_id, str(w), str(POINTS), str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(WRITERS)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]

    history = service.get_metric_history(run.run_id, "loss").items
    assert len(history) == WRITERS * POINTS
    values = [int(m.value) for m in history]
    assert len(set(values)) == WRITERS * POINTS  # none duplicated
    expected = {w * 1_000_000 + i for w in range(WRITERS) for i in range(POINTS)}
    assert set(values) == expected  # none lost
    assert service.get_run(run.run_id).metrics["loss"] in {
        w * 1_000_000 + POINTS - 1 for w in range(WRITERS)
    }
