"""A real server process on loopback, and the SDK in remote mode against it.

The server is started the way the CLI starts it (``dockyard.server.app.run``) in a subprocess
with its own ``DOCKYARD_HOME``. The same scenario then runs twice -- through the in-process
:class:`~dockyard.tracking.service.TrackingService` on a second, local home, and through
:class:`~dockyard.client.rest.RestTrackingService` against the server -- and the two results
must be equal once ids and clock times are replaced by stable labels: experiments, runs,
params, latest metrics, metric history, tags, inputs, artifact listings and bytes, search
results, audit trail, and the exception classes (and messages) of the mistakes.
"""

from __future__ import annotations

import http.client
import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.backend import Backend
from dockyard.client.rest import RestTrackingService
from dockyard.core.config import load_settings
from dockyard.core.entities import DatasetInput, Metric
from dockyard.core.errors import (
    Conflict,
    DockyardError,
    IntegrityError,
    NotFound,
    Unavailable,
)
from dockyard.governance.audit import Actor

from ._server import Server, free_port

pytestmark = pytest.mark.e2e

TOKEN = "dy-e2e-secret-token-0123456789"
# Drop fields that only say when or where something happened.
_VOLATILE = {
    "creation_time",
    "last_update_time",
    "artifact_location",
    "time",
    "event_id",
    # The audit chain's hashes cover times and ids, which differ between the two runs.
    "prev_hash",
    "hash",
}


@pytest.fixture
def remote(server: Server) -> Iterator[RestTrackingService]:
    with RestTrackingService(server.url, token=TOKEN, timeout=10) as service:
        yield service


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Any]:
    settings = load_settings(overrides={"home": str(tmp_path / "local-home")}, environ={})
    backend = Backend.open(settings)
    try:
        # The server acts for "anonymous" until tokens exist; act for the same principal here.
        yield backend.tracking(Actor.anonymous())
    finally:
        backend.close()


# -- the scenario --------------------------------------------------------------------------------


class Labels:
    """Replace ids (run ids, experiment ids, digests stay) with stable labels."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, value: str, label: str) -> None:
        self.names[value] = label

    def norm(self, obj: Any, key: str | None = None) -> Any:
        if hasattr(obj, "to_dict"):
            obj = obj.to_dict()
        if isinstance(obj, dict):
            return {k: self.norm(v, k) for k, v in obj.items() if k not in _VOLATILE}
        if isinstance(obj, list | tuple):
            return [self.norm(v, key) for v in obj]
        if isinstance(obj, float) and not math.isfinite(obj):
            return repr(obj)  # NaN never equals itself
        if isinstance(obj, str):
            # Experiment ids are small integers: replace them only where they are ids.
            if key in ("experiment_id", "resource_id") and obj in self.names:
                return self.names[obj]
            for value, label in self.names.items():
                if len(value) == 32 or value.startswith("run-"):  # run ids and default names
                    obj = obj.replace(value, label)
            return obj
        return obj


def _error(fn: Callable[[], Any], labels: Labels) -> tuple[str, str]:
    try:
        fn()
    except DockyardError as exc:
        return type(exc).__name__, labels.norm(exc.message)
    raise AssertionError("no error raised")


def _merge_artifact_writes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold consecutive ``artifact.write`` events of one run into one.

    The one known difference: locally ``log_artifacts`` records a whole folder in one
    transaction with one audit event; remotely each file is its own upload, so its own event.
    """
    merged: list[dict[str, Any]] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            last is not None
            and event["action"] == last["action"] == "artifact.write"
            and event["resource_id"] == last["resource_id"]
        ):
            last["details"]["files"] += event["details"]["files"]
            last["details"]["count"] += event["details"]["count"]
        else:
            merged.append(event)
    return merged


def scenario(svc: Any, work: Path) -> dict[str, Any]:
    """Exercise every tracking method; return what a user could observe, normalised."""
    labels = Labels()
    out: dict[str, Any] = {}

    exp = svc.create_experiment("e2e/exp", tags={"team": "risk", "n": 1})
    labels.add(exp.experiment_id, "<exp>")
    other = svc.get_or_create_experiment("other")
    labels.add(other.experiment_id, "<other>")
    svc.set_experiment_tag(exp.experiment_id, "owner", "ana")
    out["experiment"] = labels.norm(svc.get_experiment(exp.experiment_id))
    out["by_name"] = labels.norm(svc.get_experiment_by_name("e2e/exp"))
    out["resolve"] = labels.norm(
        [svc.resolve_experiment(exp.experiment_id), svc.resolve_experiment("other")]
    )
    out["renamed"] = labels.norm(svc.rename_experiment(other.experiment_id, "other renamed"))
    out["deleted"] = labels.norm(svc.delete_experiment(other.experiment_id))
    out["listed_deleted"] = labels.norm(svc.list_experiments(stage="deleted").items)
    out["restored"] = labels.norm(svc.restore_experiment(other.experiment_id))
    first = svc.list_experiments(max_results=1)
    out["experiment_pages"] = labels.norm(
        [first.items, svc.list_experiments(max_results=1, page_token=first.next_page_token).items]
    )

    parent = svc.start_run(exp.experiment_id, name="parent", tags={"a": 1}, start_time=1000)
    labels.add(parent.run_id, "<parent>")
    child = svc.start_run(
        exp.experiment_id, name="child", parent_run_id=parent.run_id, start_time=2000
    )
    labels.add(child.run_id, "<child>")
    default_run = svc.start_run(start_time=3000)
    labels.add(default_run.run_id, "<default-run>")
    labels.add(default_run.name, "<default-run-name>")  # run-<first 8 hex of its id>
    labels.add(default_run.experiment_id, "<default-exp>")

    svc.log_params(parent.run_id, {"lr": 0.1, "model": "rf", "depth": 6})
    svc.log_param(parent.run_id, "lr", 0.1)  # same value again: a no-op
    svc.log_metric(parent.run_id, "acc", 0.7, step=0, timestamp=10)
    svc.log_metric(parent.run_id, "acc", 0.9, step=1, timestamp=20)
    svc.log_metric(child.run_id, "acc", 0.8, step=0, timestamp=30)
    svc.log_batch(
        parent.run_id,
        metrics=[
            Metric("loss", float("nan"), 40, 0),
            Metric("loss", float("inf"), 50, 1),
            {"key": "loss", "value": -math.inf, "step": 2, "timestamp": 60},
            {"key": "train/steps", "value": 3, "step": 0, "timestamp": 70},
        ],
        params={"seed": 42},
        tags={"stage": "dev", "flag": True},
    )
    svc.set_tag(parent.run_id, "note", "hello")
    svc.set_tags(child.run_id, {"x": "1", "y/z": "2"})
    svc.delete_tag(child.run_id, "x")
    svc.log_inputs(
        parent.run_id,
        [
            DatasetInput("train", "abc123", "training", 100, {"x": "float"}, "s3://b/train"),
            {"name": "test", "digest": "def456", "context": "evaluation"},
        ],
    )
    out["renamed_run"] = labels.norm(svc.rename_run(child.run_id, "child renamed"))

    # artifacts
    src = work / "src"
    (src / "folder" / "sub").mkdir(parents=True)
    (src / "folder" / "a.txt").write_text("alpha")
    (src / "folder" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 50)
    (src / "single.csv").write_text("x,y\n1,2\n")
    out["log_artifact"] = labels.norm(svc.log_artifact(parent.run_id, src / "single.csv", "data"))
    out["log_artifacts"] = labels.norm(svc.log_artifacts(parent.run_id, src / "folder", "tree"))
    out["upload"] = labels.norm(
        svc.upload_artifact(parent.run_id, "model/weights.bin", io.BytesIO(b"w" * 300_000))
    )
    out["list_root"] = labels.norm(svc.list_artifacts(parent.run_id))
    out["list_tree"] = labels.norm(svc.list_artifacts(parent.run_id, "tree"))
    out["list_file"] = labels.norm(svc.list_artifacts(parent.run_id, "data/single.csv"))
    info, chunks = svc.open_artifact(parent.run_id, "model/weights.bin")
    out["open"] = [labels.norm(info), len(b"".join(chunks))]
    dest = svc.download_artifacts(parent.run_id, "tree", work / "download")
    out["download"] = {
        str(p.relative_to(dest)): p.read_bytes().hex()
        for p in sorted(dest.rglob("*"))
        if p.is_file()
    }
    whole = svc.download_artifacts(parent.run_id, "", work / "download-all")
    out["download_all"] = sorted(str(p.relative_to(whole)) for p in whole.rglob("*"))

    # ending, deleting, restoring
    out["ended_child"] = labels.norm(svc.end_run(child.run_id, "FAILED", end_time=5000))
    out["ended_parent"] = labels.norm(svc.end_run(parent.run_id, end_time=6000))
    out["deleted_run"] = labels.norm(svc.delete_run(default_run.run_id))
    out["restored_run"] = labels.norm(svc.restore_run(default_run.run_id))

    # reads
    out["parent"] = labels.norm(svc.get_run(parent.run_id))
    out["child"] = labels.norm(svc.get_run(child.run_id))
    history = svc.get_metric_history(parent.run_id, "loss", max_results=2)
    rest = svc.get_metric_history(parent.run_id, "loss", page_token=history.next_page_token)
    out["history"] = labels.norm([history.items, rest.items, rest.next_page_token])
    out["history_slash"] = labels.norm(svc.get_metric_history(parent.run_id, "train/steps").items)
    search = svc.search_runs(
        [exp.experiment_id], "metrics.acc > 0.5", ["metrics.acc DESC"], max_results=1
    )
    more = svc.search_runs(
        [exp.experiment_id],
        "metrics.acc > 0.5",
        ["metrics.acc DESC"],
        max_results=1,
        page_token=search.next_page_token,
    )
    out["search"] = labels.norm([search.items, more.items, more.next_page_token])
    out["search_or"] = labels.norm(
        svc.search_runs(filter="params.model = 'rf' or tags.y/z = '2'", order_by=["name"]).items
    )
    out["search_status"] = labels.norm(
        [r.name for r in svc.search_runs(filter="status = 'FAILED'").items]
    )
    events = svc.list_audit_events()
    # Downloads are audited once per call: locally download_artifacts is one call, remotely
    # it fetches file by file (one server call, so one event, each). The bytes add up the same.
    out["downloaded_bytes"] = sum(
        e.details["size"] for e in events if e.action == "artifact.download"
    )
    out["audit"] = _merge_artifact_writes(
        labels.norm([e for e in events if e.action != "artifact.download"])
    )
    out["audit_filtered"] = labels.norm(svc.list_audit_events(action="run.end", limit=1))

    # mistakes: the same exception class and message, locally and remotely
    out["errors"] = {
        "param_conflict": _error(lambda: svc.log_param(parent.run_id, "lr", 0.2), labels),
        "unknown_run": _error(lambda: svc.get_run("f" * 32), labels),
        "unknown_experiment": _error(lambda: svc.get_experiment("999999"), labels),
        "experiment_exists": _error(lambda: svc.create_experiment("e2e/exp"), labels),
        "run_ended": _error(lambda: svc.end_run(parent.run_id), labels),
        "unknown_tag": _error(lambda: svc.delete_tag(child.run_id, "nope"), labels),
        "bad_filter": _error(lambda: svc.search_runs(filter="metrics.acc >"), labels),
        "bad_stage": _error(lambda: svc.list_experiments(stage="bogus"), labels),
        "unsafe_upload": _error(
            lambda: svc.upload_artifact(parent.run_id, "../escape", [b"x"]), labels
        ),
        "unsafe_read": _error(lambda: svc.open_artifact(parent.run_id, "a/../../x"), labels),
        "unsafe_list": _error(lambda: svc.list_artifacts(parent.run_id, "/etc"), labels),
        "missing_artifact": _error(lambda: svc.open_artifact(parent.run_id, "nope"), labels),
        "bad_run_id": _error(lambda: svc.get_run("../../etc"), labels),
        "deleted_experiment": _error(
            lambda: svc.get_or_create_experiment(svc.delete_experiment(other.experiment_id).name),
            labels,
        ),
    }
    out["error_classes_only"] = {
        "bad_metric": _error(lambda: svc.log_metric(child.run_id, "m", "high"), labels)[0],
        "bad_key": _error(lambda: svc.log_param(child.run_id, "bad key!", 1), labels)[0],
        "bad_step": _error(lambda: svc.log_metric(child.run_id, "m", 1.0, step=1.5), labels)[0],
    }
    return out


def test_local_and_remote_give_the_same_results(
    local: Any, remote: RestTrackingService, tmp_path: Path
) -> None:
    expected = scenario(local, tmp_path / "local-work")
    got = scenario(remote, tmp_path / "remote-work")
    for key in expected:
        assert got[key] == expected[key], key
    assert got == expected


def test_remote_errors_are_the_service_classes(remote: RestTrackingService) -> None:
    run = remote.start_run(name="errors")
    remote.log_param(run.run_id, "p", "1")
    with pytest.raises(Conflict) as conflict:
        remote.log_param(run.run_id, "p", "2")
    assert conflict.value.details["old_value"] == "1"
    with pytest.raises(NotFound):
        remote.get_run("0" * 32)


def test_unreachable_server_raises_unavailable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with RestTrackingService(url, timeout=2) as service, pytest.raises(Unavailable) as info:
        service.list_experiments()
    assert url in str(info.value)


def test_server_starts_fast_and_stays_small(
    server: Server, remote: RestTrackingService, tmp_path: Path
) -> None:
    # "Well under 1 s" on a developer machine; a generous bound keeps slow CI from flaking.
    assert server.seconds_to_healthy < 5, server.seconds_to_healthy
    # Some real work first: log, upload and read back.
    run = remote.start_run(name="rss")
    remote.log_batch(run.run_id, metrics=[Metric("m", float(i), i, i) for i in range(2000)])
    remote.upload_artifact(run.run_id, "blob.bin", [b"z" * 1_000_000] * 8)
    assert len(remote.get_metric_history(run.run_id, "m").items) == 2000
    _info, chunks = remote.open_artifact(run.run_id, "blob.bin")
    assert sum(len(c) for c in chunks) == 8_000_000
    status = Path(f"/proc/{server.process.pid}/status")
    if not status.exists():
        pytest.skip("no /proc on this platform")
    rss_kb = int(
        next(x for x in status.read_text().splitlines() if x.startswith("VmRSS")).split()[1]
    )
    assert rss_kb < 250 * 1024, f"server RSS {rss_kb} kB"


def test_server_log_has_the_startup_line_and_never_the_token(
    server: Server, remote: RestTrackingService
) -> None:
    remote.list_experiments()
    text = server.log.read_text()
    assert f"Dockyard server on {server.url}" in text
    assert "sqlite:///" in text and str(server.home) in text
    assert TOKEN not in text


def _raw(server: Server, method: str, target: str, body: bytes = b"") -> tuple[int, Any]:
    """Send ``target`` byte for byte (http.client does not normalise paths)."""
    conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize(
    "spelled",
    [
        "../x",
        "..%2fx",
        "..%2Fx",
        "%2e%2e/x",
        "%252e%252e/x",
        "a%5Cb",
        "/etc/passwd",
        "x%00y",
        "a//b",
        "file:///etc/passwd",
        "a;b",
        "a%3Fb",
        "a%23b",
    ],
)
def test_real_server_refuses_escaping_artifact_paths(
    server: Server, remote: RestTrackingService, spelled: str
) -> None:
    run = remote.start_run(name="escape")
    for method, body in (("PUT", b"pwned"), ("GET", b"")):
        status, payload = _raw(
            server, method, f"/api/v1/runs/{run.run_id}/artifacts/{spelled}", body
        )
        assert (status, payload["error"]["code"]) == (422, "unsafe_path"), payload
    assert remote.list_artifacts(run.run_id) == []


def test_real_server_limits_chunked_json_bodies(
    server: Server, remote: RestTrackingService
) -> None:
    import httpx

    run = remote.start_run(name="big")

    def chunks() -> Iterator[bytes]:
        yield b'{"params": {"p": "'
        for _ in range(9):
            yield b"x" * (1024 * 1024)
        yield b'"}}'

    r = httpx.post(
        f"{server.url}/api/v1/runs/{run.run_id}/batch",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert remote.get_run(run.run_id).params == {}


def test_corrupted_blob_never_downloads_as_if_fine(
    server: Server, remote: RestTrackingService, tmp_path: Path
) -> None:
    run = remote.start_run(name="corrupt")
    stored = remote.upload_artifact(run.run_id, "f.bin", [b"a" * 200_000])
    blob = next((server.home / "artifacts").rglob(str(stored.digest)))
    blob.chmod(0o600)
    blob.write_bytes(b"b" * 200_000)
    with pytest.raises((IntegrityError, Unavailable)):
        remote.download_artifacts(run.run_id, "f.bin", tmp_path)
    assert not (tmp_path / "f.bin").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either
    # Any client, not only ours: the server never completes the body it announced.
    import httpx

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/api/v1/runs/{run.run_id}/artifacts/f.bin", timeout=10)


def test_rest_service_has_the_service_methods_and_signatures() -> None:
    """Same public methods (plus ``close``), same signatures, same annotations."""
    import inspect

    from dockyard.tracking.service import TrackingService

    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    assert public(RestTrackingService) - {"close"} == public(TrackingService)
    for name in sorted(public(TrackingService)):
        local_sig = inspect.signature(getattr(TrackingService, name))
        remote_sig = inspect.signature(getattr(RestTrackingService, name))
        assert str(remote_sig) == str(local_sig), name
