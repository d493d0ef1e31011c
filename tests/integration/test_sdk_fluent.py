"""The fluent SDK (`import dockyard as dy`) in local mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dockyard as dy
from dockyard.client._buffer import MetricFlushError
from dockyard.core.entities import RunStatus


def test_start_run_tracks_params_metrics_tags_and_finishes(home: Path) -> None:
    with dy.start_run(experiment="fraud", name="rf") as run:
        dy.log_params({"max_depth": 6})
        for step in range(2500):
            dy.log_metric("loss", 1 / (step + 1), step=step)
        dy.log_metrics({"auc": 0.9, "f1": 0.5}, step=1)
        dy.set_tag("team", "risk")
    got = dy.get_client().get_run(run.run_id)
    assert got.status is RunStatus.FINISHED
    user_tags = {k: v for k, v in got.tags.items() if not k.startswith("dockyard.source.")}
    assert got.params == {"max_depth": "6"} and user_tags == {"team": "risk"}
    assert got.metrics["loss"] == pytest.approx(1 / 2500)
    assert len(dy.get_client().get_metric_history(run.run_id, "loss").items) == 2500
    assert dy.get_client().get_experiment(got.experiment_id).name == "fraud"


def test_a_raising_block_marks_the_run_failed(home: Path) -> None:
    with pytest.raises(RuntimeError), dy.start_run(name="boom") as run:
        raise RuntimeError("boom")
    assert dy.get_client().get_run(run.run_id).status is RunStatus.FAILED
    assert dy.active_run() is None


def test_nested_runs_and_the_single_active_run_rule(home: Path) -> None:
    with dy.start_run(experiment="cv", name="parent") as parent:
        with pytest.raises(dy.Conflict, match="already active"):
            dy.start_run(name="oops")
        with dy.start_run(name="fold-0", nested=True) as child:
            dy.log_metric("auc", 0.8)
        assert dy.active_run() is parent
    c = dy.get_client().get_run(child.run_id)
    assert c.parent_run_id == parent.run_id and c.metrics == {"auc": 0.8}
    assert c.experiment_id == dy.get_client().get_run(parent.run_id).experiment_id


def test_param_conflicts_surface_at_the_call(home: Path) -> None:
    with dy.start_run():
        dy.log_param("lr", 0.1)
        with pytest.raises(dy.Conflict, match=r"'lr'.*'0\.1'.*'0\.2'"):
            dy.log_param("lr", 0.2)


def test_a_failed_background_flush_is_raised_at_end_of_run(home: Path) -> None:
    run = dy.start_run(name="doomed")
    dy.log_metric("loss", 1.0)
    dy.get_client().delete_run(run.run_id)  # writes to a deleted run are refused
    with pytest.raises(MetricFlushError, match="deleted"):
        dy.end_run()
    assert dy.active_run() is None


def test_log_input_records_a_dataframe(home: Path) -> None:
    import pandas as pd

    df = pd.DataFrame({"amount": [1.0, 2.5, None], "country": ["DE", "FR", "DE"]})
    with dy.start_run() as run:
        ds = dy.log_input(df, name="tx", context="training")
    [stored] = dy.get_client().get_run(run.run_id).inputs
    assert stored == ds and stored.num_rows == 3 and len(stored.digest) == 64
    assert {c["name"] for c in stored.schema["columns"]} == {"amount", "country"}


def test_resuming_a_run_by_id(home: Path) -> None:
    run = dy.get_client().start_run(None, name="resumable")
    with dy.start_run(run_id=run.run_id):
        dy.log_metric("m", 1.0)
    assert dy.get_client().get_run(run.run_id).metrics == {"m": 1.0}


_UPLOADER = textwrap.dedent(
    """
    import sys
    import dockyard as dy
    run = dy.get_client().start_run(None, name="upload")
    print(run.run_id, flush=True)
    dy.get_client().log_artifact(run.run_id, sys.argv[1])
    print("done", flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_during_an_artifact_upload_leaves_no_row_on_a_partial_blob(
    home: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for i in range(400):  # 400 MiB of non-repeating data: the copy takes a while
            f.write(os.urandom(1024 * 1024) if i % 50 == 0 else bytes([i % 251]) * 1024 * 1024)
    proc = subprocess.Popen(
        [sys.executable, "-c", _UPLOADER, str(big)],
        env={**os.environ, "DOCKYARD_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    tmp_dir = home / "artifacts" / "tmp"
    deadline = time.time() + 30
    while time.time() < deadline and not (tmp_dir.exists() and any(tmp_dir.iterdir())):
        time.sleep(0.005)  # wait until the upload is under way
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    client = dy.get_client()
    rows = client.list_artifacts(run_id)
    blobs = (
        list((home / "artifacts" / "blobs").rglob("*"))
        if (home / "artifacts" / "blobs").exists()
        else []
    )
    # Either the upload finished before the kill (a whole, verified blob and its row) or
    # nothing points at a blob: never a row on a partial blob, never a partial final blob.
    for a in rows:
        _info, chunks = client.open_artifact(run_id, a.path)
        assert sum(len(c) for c in chunks) == big.stat().st_size  # hash verified at the end
    for b in blobs:
        if b.is_file():
            import hashlib

            assert hashlib.sha256(b.read_bytes()).hexdigest() == b.name
