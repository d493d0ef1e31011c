"""The tracking service on a real store: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dockyard.core.entities import DatasetInput, Metric, RunStatus
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    UnsafePath,
)
from dockyard.tracking.service import TrackingService


def audit_count(service: TrackingService) -> int:
    return len(service.list_audit_events(limit=50_000))


def test_experiment_lifecycle_create_rename_delete_restore(service: TrackingService) -> None:
    exp = service.create_experiment("fraud", tags={"team": "risk"})
    assert service.get_experiment(exp.experiment_id) == exp
    assert service.get_experiment_by_name("fraud").tags == {"team": "risk"}
    with pytest.raises(AlreadyExists, match="fraud"):
        service.create_experiment("fraud")
    renamed = service.rename_experiment(exp.experiment_id, "fraud-v2")
    assert renamed.name == "fraud-v2"
    service.delete_experiment(exp.experiment_id)
    assert [e.name for e in service.list_experiments().items] == []
    assert [e.name for e in service.list_experiments(stage="deleted").items] == ["fraud-v2"]
    with pytest.raises(Conflict):
        service.start_run(exp.experiment_id)
    service.restore_experiment(exp.experiment_id)
    assert [e.name for e in service.list_experiments().items] == ["fraud-v2"]
    with pytest.raises(NotFound):
        service.get_experiment("999999")
    with pytest.raises(InvalidInput):
        service.get_experiment("abc")


def test_list_experiments_paginates_with_a_cursor(service: TrackingService) -> None:
    for i in range(7):
        service.create_experiment(f"e{i}")
    seen, token = [], None
    while True:
        page = service.list_experiments(max_results=3, page_token=token)
        seen += [e.name for e in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == [f"e{i}" for i in range(7)]
    with pytest.raises(InvalidInput, match="page token"):
        service.list_experiments(page_token="garbage!")


def test_run_logs_params_metrics_tags_and_ends(service: TrackingService) -> None:
    exp = service.create_experiment("fraud")
    run = service.start_run(exp.experiment_id, name="rf", tags={"team": "risk"})
    assert run.status is RunStatus.RUNNING
    service.log_params(run.run_id, {"max_depth": 6, "model": "rf"})
    service.log_param(run.run_id, "max_depth", 6)  # the same value again is fine
    with pytest.raises(Conflict) as err:
        service.log_param(run.run_id, "max_depth", 7)
    assert "max_depth" in err.value.message and "'6'" in err.value.message
    assert "'7'" in err.value.message
    service.log_batch(
        run.run_id,
        metrics=[
            Metric("auc", 0.8, 1000, 0),
            Metric("auc", 0.9, 1001, 1),
            Metric("auc", 0.85, 999, 1),
            Metric("loss", math.nan, 1000, 0),
        ],
    )
    service.log_metric(run.run_id, "auc", 0.7, step=0)
    got = service.get_run(run.run_id)
    assert got.params == {"max_depth": "6", "model": "rf"}
    assert got.metrics["auc"] == 0.9  # largest step, then latest timestamp
    assert math.isnan(got.metrics["loss"])
    assert got.tags == {"team": "risk"}
    history = service.get_metric_history(run.run_id, "auc").items
    assert [(m.step, m.value) for m in history] == [(0, 0.8), (0, 0.7), (1, 0.85), (1, 0.9)] or [
        (m.step, m.value) for m in history
    ] == [(0, 0.7), (0, 0.8), (1, 0.85), (1, 0.9)]
    ended = service.end_run(run.run_id, "FINISHED")
    assert ended.status is RunStatus.FINISHED and ended.end_time is not None
    with pytest.raises(Conflict, match="already ended"):
        service.end_run(run.run_id)


def test_run_left_running_by_a_crash_can_be_killed(service: TrackingService) -> None:
    run = service.start_run(None, name="crashed")
    assert service.get_experiment(run.experiment_id).name == "Default"
    ended = service.end_run(run.run_id, "killed")
    assert ended.status is RunStatus.KILLED
    with pytest.raises(InvalidInput, match="status"):
        service.end_run(service.start_run(None).run_id, "DONE")


def test_nested_runs_record_their_parent(service: TrackingService) -> None:
    parent = service.start_run(None, name="cv")
    child = service.start_run(None, name="fold-1", parent_run_id=parent.run_id)
    assert child.parent_run_id == parent.run_id
    with pytest.raises(NotFound, match="parent"):
        service.start_run(None, parent_run_id="0" * 32)


def test_bad_values_are_refused_and_nothing_is_written(service: TrackingService) -> None:
    run = service.start_run(None)
    before = audit_count(service)
    with pytest.raises(InvalidInput, match="number"):
        service.log_metric(run.run_id, "auc", "high")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="key"):
        service.log_param(run.run_id, "../etc", 1)
    with pytest.raises(InvalidInput, match="step"):
        service.log_metric(run.run_id, "auc", 0.5, step=1.5)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        service.log_metric("f" * 32, "auc", 0.5)
    with pytest.raises(Conflict):
        # the param batch fails as a whole: the metric in the same batch is not written
        service.log_param(run.run_id, "a", 1)
        service.log_batch(run.run_id, metrics=[Metric("m", 1.0, 1, 0)], params={"a": 2})
    assert service.get_run(run.run_id).metrics == {}
    assert audit_count(service) == before + 1  # only the successful log_param


def test_every_mutation_writes_an_audit_event(service: TrackingService) -> None:
    exp = service.create_experiment("audited")
    run = service.start_run(exp.experiment_id)
    service.log_param(run.run_id, "a", 1)
    service.set_tag(run.run_id, "t", "v")
    service.end_run(run.run_id)
    events = service.list_audit_events()
    assert [e.action for e in events] == [
        "experiment.create",
        "run.create",
        "run.log",
        "run.log",
        "run.end",
    ]
    assert {e.actor for e in events} == {"tester"}
    assert events[1].resource_id == run.run_id


def test_inputs_record_datasets_with_digest_schema_and_rows(service: TrackingService) -> None:
    run = service.start_run(None)
    ds = DatasetInput(
        name="tx",
        digest="abc123",
        context="training",
        num_rows=10,
        schema={"columns": [{"name": "amount", "type": "float"}]},
        source="gen",
    )
    service.log_inputs(run.run_id, [ds, ds])  # the second is a duplicate: stored once
    assert service.get_run(run.run_id).inputs == [ds]


def test_artifacts_log_list_and_download(service: TrackingService, tmp_path: Path) -> None:
    run = service.start_run(None)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.bin").write_bytes(b"\x00model" * 1000)
    (src / "sub" / "notes.txt").write_text("hello")
    single = tmp_path / "report.html"
    single.write_text("<h1>r</h1>")
    service.log_artifacts(run.run_id, src, artifact_path="model")
    service.log_artifact(run.run_id, single)
    top = service.list_artifacts(run.run_id)
    assert [(a.path, a.is_dir) for a in top] == [("model", True), ("report.html", False)]
    inner = service.list_artifacts(run.run_id, "model")
    assert [(a.path, a.is_dir) for a in inner] == [("model/model.bin", False), ("model/sub", True)]
    out = service.download_artifacts(run.run_id, "model", tmp_path / "dl")
    assert (out / "model.bin").read_bytes() == b"\x00model" * 1000
    assert (out / "sub" / "notes.txt").read_text() == "hello"
    info, chunks = service.open_artifact(run.run_id, "report.html")
    assert b"".join(chunks) == b"<h1>r</h1>" and info.size == 10
    with pytest.raises(NotFound):
        service.list_artifacts(run.run_id, "nope")
    for bad in ["../x", "/etc/passwd", "a\\b", "%2e%2e/x", "x\x00y"]:
        with pytest.raises(UnsafePath):
            service.open_artifact(run.run_id, bad)
        with pytest.raises(UnsafePath):
            service.list_artifacts(run.run_id, bad)
        with pytest.raises(UnsafePath):
            service.log_artifact(run.run_id, single, artifact_path=bad)


def test_search_runs_with_and_or_parentheses_order_and_cursor(service: TrackingService) -> None:
    exp = service.create_experiment("search")
    specs = [
        ("a", 0.95, "rf", "risk"),
        ("b", 0.92, "lr", "risk"),
        ("c", 0.97, "lr", "ops"),
        ("d", 0.80, "rf", "risk"),
        ("e", 0.99, "gb", "ops"),
    ]
    for name, auc, model, team in specs:
        r = service.start_run(exp.experiment_id, name=name, tags={"team": team})
        service.log_batch(r.run_id, metrics=[Metric("auc", auc, 1, 0)], params={"model": model})
    page = service.search_runs(
        [exp.experiment_id],
        filter="metrics.auc > 0.9 and (params.model = 'rf' or tags.team = 'risk')",
        order_by=["metrics.auc DESC"],
    )
    assert [r.name for r in page.items] == ["a", "b"]
    names, token = [], None
    while True:
        page = service.search_runs(
            [exp.experiment_id], order_by=["metrics.auc ASC"], max_results=2, page_token=token
        )
        names += [r.name for r in page.items]
        token = page.next_page_token
        if not token:
            break
    assert names == ["d", "b", "a", "c", "e"]
    with pytest.raises(InvalidInput) as err:
        service.search_runs(filter="metrics.auc > and params.x = 'y'")
    assert err.value.details.get("position") is not None


def test_text_no_database_can_store_is_refused_everywhere(service: TrackingService) -> None:
    run = service.start_run(None)
    for call in (
        lambda: service.log_param(run.run_id, "k", "a\x00b"),
        lambda: service.set_tag(run.run_id, "k", "\x00"),
        lambda: service.log_inputs(run.run_id, [DatasetInput("d", "a\x00", "training")]),
        lambda: service.log_inputs(
            run.run_id, [DatasetInput("d", "abc", "training", source="x" * 5000)]
        ),
        lambda: service.search_runs(filter="params.a = 'x\x00'"),
        lambda: service.log_metric(run.run_id, "m", 10**400),
        lambda: service.list_audit_events(actor="a\x00"),
        lambda: service.list_audit_events(limit=-1),
    ):
        with pytest.raises(InvalidInput):
            call()


def test_an_artifact_path_is_a_file_or_a_folder_never_both(
    service: TrackingService, tmp_path: Path
) -> None:
    run = service.start_run(None)
    f = tmp_path / "a"
    f.write_text("x")
    service.log_artifact(run.run_id, f)
    with pytest.raises(Conflict, match="file at 'a'"):
        service.log_artifact(run.run_id, f, artifact_path="a")
    service.log_artifact(run.run_id, f, artifact_path="d")
    with pytest.raises(Conflict, match="folder there"):
        service.upload_artifact(run.run_id, "d", [b"y"])
    assert [a.path for a in service.list_artifacts(run.run_id)] == ["a", "d"]
