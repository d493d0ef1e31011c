"""The registry service on a real store: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from dockyard.backend import Backend
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
)
from dockyard.core.registry_entities import (
    STATUSES,
    TRANSITIONS,
    AliasEvent,
    ModelVersion,
    ValidationResult,
)
from dockyard.governance.audit import Actor
from dockyard.registry.packaging.manifest import Manifest
from dockyard.registry.service import RegistryService
from dockyard.tracking.service import TrackingService

GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def registry(backend: Backend) -> RegistryService:
    return backend.registry(Actor("tester"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_package(folder: Path, payload: bytes = b"weights-1", **manifest: Any) -> Manifest:
    """A small valid package (an ONNX-flavored manifest over opaque bytes): enough for the
    store, alias, lifecycle and cache paths, which never deserialise the model."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(payload)
    data: dict[str, Any] = {
        "format_version": 1,
        "flavor": "onnx",
        "framework": {"name": "onnx", "version": "1.0"},
        "serialization": "onnx",
        "task": "classification",
        "files": {"model.onnx": {"sha256": _sha(payload), "size": len(payload)}},
        "flavor_config": {"model_file": "model.onnx"},
        "created_time": 1,
    }
    data.update(manifest)
    (folder / "manifest.json").write_text(json.dumps(data))
    return Manifest.from_dict(data)


def logged_run(
    tracking: TrackingService, tmp_path: Path, payload: bytes = b"weights-1", **manifest: Any
) -> str:
    """A finished run with inputs, git tags, metrics and a package under ``model``."""
    exp = tracking.get_or_create_experiment("fraud-training")
    run = tracking.start_run(
        exp.experiment_id,
        tags={"dockyard.source.git_commit": GIT_COMMIT, "dockyard.source.git_dirty": "false"},
    )
    tracking.log_params(run.run_id, {"max_depth": 4})
    tracking.log_metric(run.run_id, "auc", 0.91)
    tracking.log_inputs(run.run_id, [{"name": "train", "digest": "d" * 64, "context": "training"}])
    folder = tmp_path / f"pkg-{run.run_id}"
    write_package(folder, payload, **manifest)
    tracking.log_artifacts(run.run_id, folder, "model")
    tracking.end_run(run.run_id)
    return run.run_id


def audit_actions(tracking: TrackingService) -> list[str]:
    return [e.action for e in tracking.list_audit_events(limit=50_000)]


# -- versions ---------------------------------------------------------------------------------


def test_a_version_from_a_run_records_package_lineage_and_audit(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    run_id = logged_run(service, tmp_path)
    mv = registry.create_model_version("fraud", f"runs:/{run_id}/model", description="first")
    assert (mv.name, mv.version, mv.status) == ("fraud", 1, "candidate")
    assert mv.source == f"runs:/{run_id}/model" and mv.run_id == run_id
    expected = Manifest.from_dict(
        json.loads((tmp_path / f"pkg-{run_id}/manifest.json").read_text())
    )
    assert mv.package_digest == expected.digest
    assert mv.flavor == "onnx" and mv.task == "classification" and mv.trusted_pickle is False
    manifest_bytes = (tmp_path / f"pkg-{run_id}/manifest.json").read_bytes()
    assert mv.files == {
        "manifest.json": {"sha256": _sha(manifest_bytes), "size": len(manifest_bytes)},
        "model.onnx": {"sha256": _sha(b"weights-1"), "size": 9},
    }
    assert mv.datasets == [{"name": "train", "digest": "d" * 64, "context": "training"}]
    assert mv.code == {"git_commit": GIT_COMMIT, "git_dirty": False}
    assert mv.metrics == {"auc": 0.91}
    assert mv.description == "first" and mv.created_by == "tester"
    assert registry.get_model_version("fraud", 1) == mv
    assert ModelVersion.from_dict(json.loads(json.dumps(mv.to_dict()))) == mv
    model = registry.get_registered_model("fraud")
    assert model.owner == "tester" and model.latest_version == 1
    [created] = registry.status_history("fraud", 1)
    assert (created.from_status, created.to_status, created.actor) == (None, "candidate", "tester")
    events = service.list_audit_events(resource_id="fraud/1")
    assert [e.action for e in events] == ["model_version.create"]
    assert events[0].details["trusted_pickle"] is False
    assert events[0].details["package_digest"] == mv.package_digest
    assert "registered_model.create" in audit_actions(service)


def test_versions_are_numbered_per_model_and_listed_in_pages(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    run_id = logged_run(service, tmp_path)
    src = f"runs:/{run_id}/model"
    assert [registry.create_model_version("a", src).version for _ in range(3)] == [1, 2, 3]
    assert registry.create_model_version("b", src).version == 1
    seen, token = [], None
    while True:
        page = registry.list_model_versions("a", max_results=2, page_token=token)
        seen += [m.version for m in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == [1, 2, 3]
    registry.transition("a", 2, "rejected")
    assert [m.version for m in registry.list_model_versions("a", status="candidate").items] == [
        1,
        3,
    ]
    with pytest.raises(InvalidInput, match="status must be one of"):
        registry.list_model_versions("a", status="live")
    with pytest.raises(NotFound, match="'nope'"):
        registry.list_model_versions("nope")


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc",
        "/etc/passwd",
        "../x",
        "//proc/self/root",
        "http://example.com/model.tar.gz",
        "https://example.com/model",
        "s3://bucket/model",
        "model",
        "runs:",
        "",
    ],
)
def test_sources_other_than_runs_and_models_are_refused(
    registry: RegistryService, source: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        registry.create_model_version("fraud", source)
    assert "runs:/<run_id>/<artifact_path>" in err.value.message
    assert "models:/<name>/<version>" in err.value.message
    with pytest.raises(NotFound):
        registry.get_registered_model("fraud")  # nothing half-written


@pytest.mark.parametrize(
    "suffix", ["/../x", "/model/../../etc", "//proc/self/root", "/model/%2e%2e/x", "/C:/x"]
)
def test_run_sources_with_escaping_paths_are_refused(
    registry: RegistryService, service: TrackingService, tmp_path: Path, suffix: str
) -> None:
    run_id = logged_run(service, tmp_path)
    with pytest.raises(InvalidInput):
        registry.create_model_version("fraud", f"runs:/{run_id}{suffix}")
    with pytest.raises(InvalidInput, match="run id"):
        registry.create_model_version("fraud", "runs://proc/self/root")


def test_a_folder_without_a_manifest_or_a_missing_run_is_refused(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    run_id = logged_run(service, tmp_path)
    with pytest.raises(InvalidInput, match=r"no manifest\.json"):
        registry.create_model_version("fraud", f"runs:/{run_id}/elsewhere")
    with pytest.raises(NotFound, match="does not exist"):
        registry.create_model_version("fraud", "runs:/" + "a" * 32 + "/model")


def test_a_package_whose_files_differ_from_the_manifest_is_refused(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    # model.onnx is replaced after the manifest was written.
    exp = service.get_or_create_experiment("fraud-training")
    run = service.start_run(exp.experiment_id)
    folder = tmp_path / "tampered"
    write_package(folder, b"weights-1")
    (folder / "model.onnx").write_bytes(b"weights-2")  # same size, other bytes
    service.log_artifacts(run.run_id, folder, "model")
    with pytest.raises(InvalidInput, match=r"model\.onnx") as err:
        registry.create_model_version("fraud", f"runs:/{run.run_id}/model")
    assert "altered" in err.value.message
    # A manifest listing a file that was never logged.
    run2 = service.start_run(exp.experiment_id)
    folder2 = tmp_path / "incomplete"
    write_package(folder2)
    (folder2 / "model.onnx").unlink()
    service.log_artifacts(run2.run_id, folder2, "model")
    with pytest.raises(InvalidInput, match=r"'model\.onnx'.*not in the package"):
        registry.create_model_version("fraud", f"runs:/{run2.run_id}/model")
    with pytest.raises(NotFound):
        registry.get_registered_model("fraud")


def test_a_manifest_with_an_escaping_file_path_is_refused(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    exp = service.get_or_create_experiment("x")
    run = service.start_run(exp.experiment_id)
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "flavor": "onnx",
                "framework": {},
                "serialization": "onnx",
                "files": {"../../etc/passwd": {"sha256": "0" * 64, "size": 1}},
            }
        )
    )
    service.log_artifacts(run.run_id, folder, "model")
    with pytest.raises(InvalidInput, match="unsafe"):
        registry.create_model_version("fraud", f"runs:/{run.run_id}/model")


def test_a_version_can_be_copied_from_a_models_uri(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    run_id = logged_run(service, tmp_path)
    first = registry.create_model_version("fraud", f"runs:/{run_id}/model")
    registry.set_alias("fraud", "champion", 1)
    copy = registry.create_model_version("fraud-eu", "models:/fraud@champion")
    assert (copy.name, copy.version, copy.source) == ("fraud-eu", 1, "models:/fraud/1")
    assert copy.files == first.files and copy.package_digest == first.package_digest
    assert copy.run_id == run_id and copy.code == first.code
    with pytest.raises(NotFound, match="no alias 'missing'"):
        registry.create_model_version("fraud-eu", "models:/fraud@missing")


def test_a_version_from_uploaded_blobs(
    registry: RegistryService, backend: Backend, tmp_path: Path
) -> None:
    folder = tmp_path / "pkg"
    manifest = write_package(folder, b"uploaded")
    files = {}
    for name in ("manifest.json", "model.onnx"):
        blob = backend.artifacts.put_file(folder / name)
        files[name] = (blob.digest, blob.size)
    mv = registry.create_model_version_from_files("up", files)
    assert mv.source == f"package:{manifest.digest}" and mv.run_id is None
    assert mv.files["model.onnx"] == {"sha256": _sha(b"uploaded"), "size": 8}
    # A file whose blob was never stored, or whose size lies, is refused.
    bad = dict(files)
    bad["model.onnx"] = (_sha(b"weights-9"), 9)
    with pytest.raises(InvalidInput, match=r"model\.onnx"):
        registry.create_model_version_from_files("up", bad)
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    blob = backend.artifacts.put_file(extra)
    with pytest.raises(InvalidInput, match="does not list"):
        registry.create_model_version_from_files(
            "up", {**files, "extra.txt": (blob.digest, blob.size)}
        )
    with pytest.raises(InvalidInput):
        registry.create_model_version_from_files("up", {"../manifest.json": files["manifest.json"]})
    assert registry.get_registered_model("up").latest_version == 1


def test_concurrent_registrations_get_distinct_numbers(
    backend: Backend, service: TrackingService, tmp_path: Path
) -> None:
    run_id = logged_run(service, tmp_path)
    src = f"runs:/{run_id}/model"
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work(i: int) -> None:
        reg = backend.registry(Actor(f"worker-{i}"))
        try:
            barrier.wait()
            for _ in range(4):
                results.append(reg.create_model_version("race", src).version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == list(range(1, 25))
    reg = backend.registry(Actor("tester"))
    assert reg.get_registered_model("race").latest_version == 24
    created = [a for a in audit_actions(service) if a == "registered_model.create"]
    assert len(created) == 1


# -- registered models and names --------------------------------------------------------------


def test_registered_models_crud_tags_and_paging(
    registry: RegistryService, service: TrackingService
) -> None:
    m = registry.create_registered_model("churn", "predicts churn", tags={"team": "growth"})
    assert (m.name, m.description, m.owner, m.tags) == (
        "churn",
        "predicts churn",
        "tester",
        {"team": "growth"},
    )
    assert m.latest_version is None and m.aliases == {}
    with pytest.raises(AlreadyExists, match="'churn'"):
        registry.create_registered_model("churn")
    assert registry.update_registered_model("churn", description="v2").description == "v2"
    registry.set_registered_model_tag("churn", "tier", 1)
    assert registry.get_registered_model("churn").tags == {"team": "growth", "tier": "1"}
    for i in range(5):
        registry.create_registered_model(f"m{i}")
    seen, token = [], None
    while True:
        page = registry.list_registered_models(max_results=2, page_token=token)
        seen += [x.name for x in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == ["churn", "m0", "m1", "m2", "m3", "m4"]
    with pytest.raises(InvalidInput, match="page token"):
        registry.list_registered_models(page_token="junk!")
    with pytest.raises(NotFound):
        registry.update_registered_model("ghost", description="x")
    actions = audit_actions(service)
    assert actions.count("registered_model.create") == 6
    assert "registered_model.update" in actions and "registered_model.set_tag" in actions


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a/b", "reserved"),
        ("a@b", "reserved"),
        ("a:b", "reserved"),
        ("", "non-empty"),
        (" fraud", "whitespace"),
        ("x" * 257, "longer than 256"),
        ("bad\nname", "control"),
    ],
)
def test_model_names_are_checked(registry: RegistryService, name: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        registry.create_registered_model(name)


@pytest.mark.parametrize(
    "alias", ["Champion", "1st", "production", "latest", "a" * 65, "with space", "", "a/b"]
)
def test_alias_names_are_checked(
    registry: RegistryService, service: TrackingService, tmp_path: Path, alias: str
) -> None:
    registry.create_model_version("fraud", f"runs:/{logged_run(service, tmp_path)}/model")
    with pytest.raises(InvalidInput, match="alias"):
        registry.set_alias("fraud", alias, 1)


# -- aliases ----------------------------------------------------------------------------------


def test_aliases_move_and_keep_their_history(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    src = f"runs:/{logged_run(service, tmp_path)}/model"
    for _ in range(3):
        registry.create_model_version("fraud", src)
    assert registry.set_alias("fraud", "champion", 1).aliases == ["champion"]
    registry.set_alias("fraud", "challenger", 2)
    moved = registry.set_alias("fraud", "champion", 2)
    assert moved.aliases == ["challenger", "champion"]
    registry.set_alias("fraud", "champion", 2)  # no move: nothing recorded
    assert registry.get_registered_model("fraud").aliases == {"challenger": 2, "champion": 2}
    assert registry.resolve("models:/fraud@champion").version == 2
    assert registry.get_model_version("fraud", 1).aliases == []
    registry.delete_alias("fraud", "challenger")
    with pytest.raises(NotFound, match="no alias 'challenger'"):
        registry.delete_alias("fraud", "challenger")
    with pytest.raises(NotFound, match="no version 9"):
        registry.set_alias("fraud", "champion", 9)
    history = registry.alias_history("fraud", "champion")
    assert [(e.from_version, e.to_version, e.actor) for e in history] == [
        (None, 1, "tester"),
        (1, 2, "tester"),
    ]
    everything = registry.alias_history("fraud")
    assert [(e.alias, e.from_version, e.to_version) for e in everything] == [
        ("champion", None, 1),
        ("challenger", None, 2),
        ("champion", 1, 2),
        ("challenger", 2, None),
    ]
    assert all(e.time > 0 for e in everything)
    assert [AliasEvent.from_dict(e.to_dict()) for e in everything] == everything
    actions = audit_actions(service)
    assert actions.count("alias.set") == 3 and actions.count("alias.delete") == 1
    with pytest.raises(NotFound):
        registry.alias_history("ghost")


# -- lifecycle --------------------------------------------------------------------------------

# A legal path into each status (approved through an audited gate override).
PATHS = {
    "candidate": [],
    "approved": ["approved"],
    "production": ["approved", "production"],
    "deprecated": ["approved", "deprecated"],
    "retired": ["approved", "deprecated", "retired"],
    "rejected": ["rejected"],
}


def _walk(registry: RegistryService, version: int, path: list[str]) -> ModelVersion:
    mv = registry.get_model_version("fraud", version)
    for step in path:
        mv = registry.transition(
            "fraud",
            version,
            step,
            reason="walked there in a test",
            override_gate=step == "approved",
        )
    return mv


def test_every_illegal_transition_is_refused_with_the_allowed_targets(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    src = f"runs:/{logged_run(service, tmp_path)}/model"
    for status in STATUSES:
        mv = registry.create_model_version("fraud", src)
        mv = _walk(registry, mv.version, PATHS[status])
        assert mv.status == status
        for target in STATUSES:
            if target in TRANSITIONS[status]:
                continue
            with pytest.raises(Conflict) as err:
                registry.transition("fraud", mv.version, target, reason="try")
            msg = err.value.message
            if target == status:
                assert f"already {status}" in msg
            elif TRANSITIONS[status]:
                assert f"allowed from {status}: {', '.join(TRANSITIONS[status])}" in msg
            else:
                assert "final status" in msg
        assert registry.get_model_version("fraud", mv.version).status == status
    with pytest.raises(InvalidInput, match="status must be one of"):
        registry.transition("fraud", 1, "live")


def test_legal_transitions_are_recorded_and_deprecated_can_return_to_production(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    registry.create_model_version("fraud", f"runs:/{logged_run(service, tmp_path)}/model")
    _walk(registry, 1, ["approved", "production"])
    registry.transition("fraud", 1, "deprecated", reason="v2 is better")
    back = registry.transition("fraud", 1, "production", reason="rollback")
    assert back.status == "production" and back.status_reason == "rollback"
    history = registry.status_history("fraud", 1)
    assert [(e.from_status, e.to_status) for e in history] == [
        (None, "candidate"),
        ("candidate", "approved"),
        ("approved", "production"),
        ("production", "deprecated"),
        ("deprecated", "production"),
    ]
    assert history[3].reason == "v2 is better"
    events = service.list_audit_events(action="model_version.transition")
    assert [(e.details["from_status"], e.details["to_status"]) for e in events][-1] == (
        "deprecated",
        "production",
    )


def test_approval_needs_a_passed_gate_or_a_written_override(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    registry.create_model_version("fraud", f"runs:/{logged_run(service, tmp_path)}/model")
    with pytest.raises(Conflict, match="no validation"):
        registry.transition("fraud", 1, "approved")
    with pytest.raises(InvalidInput, match="written reason"):
        registry.transition("fraud", 1, "approved", override_gate=True)
    with pytest.raises(InvalidInput, match="written reason"):
        registry.transition("fraud", 1, "approved", reason="   ", override_gate=True)
    with pytest.raises(InvalidInput, match="only applies"):
        registry.transition("fraud", 1, "rejected", reason="x", override_gate=True)
    assert registry.get_model_version("fraud", 1).status == "candidate"
    mv = registry.transition(
        "fraud", 1, "approved", reason="urgent fix, gate run offline", override_gate=True
    )
    assert mv.status == "approved"
    [override] = service.list_audit_events(action="model_version.gate_override")
    assert override.details == {"reason": "urgent fix, gate run offline"}
    assert override.resource_id == "fraud/1" and override.actor == "tester"


def test_retire_rules(registry: RegistryService, service: TrackingService, tmp_path: Path) -> None:
    src = f"runs:/{logged_run(service, tmp_path)}/model"
    for _ in range(4):
        registry.create_model_version("fraud", src)
    _walk(registry, 1, ["approved", "production"])
    with pytest.raises(InvalidInput, match="needs a reason"):
        registry.retire("fraud", 2, reason="  ")
    with pytest.raises(Conflict, match="deprecate it first"):
        registry.retire("fraud", 1, reason="old")
    registry.set_alias("fraud", "champion", 2)
    registry.set_alias("fraud", "backup", 2)
    with pytest.raises(Conflict, match="aliased as backup, champion"):
        registry.retire("fraud", 2, reason="old")
    registry.delete_alias("fraud", "backup")
    registry.set_alias("fraud", "champion", 3)
    with pytest.raises(NotFound, match="no version 7"):
        registry.retire("fraud", 2, reason="old", replacement_version=7)
    with pytest.raises(InvalidInput, match="own replacement"):
        registry.retire("fraud", 2, reason="old", replacement_version=2)
    registry.transition("fraud", 4, "rejected", reason="bad")
    with pytest.raises(Conflict, match="rejected"):
        registry.retire("fraud", 2, reason="old", replacement_version=4)
    retired = registry.retire("fraud", 2, reason="superseded by v3", replacement_version=3)
    assert retired.status == "retired"
    assert retired.status_reason == "superseded by v3" and retired.replacement_version == 3
    assert registry.status_history("fraud", 2)[-1].from_status == "candidate"
    with pytest.raises(Conflict, match="retired version cannot be aliased"):
        registry.set_alias("fraud", "champion", 2)
    with pytest.raises(Conflict, match="final status"):
        registry.retire("fraud", 2, reason="again")
    with pytest.raises(Conflict, match="cannot be aliased"):
        registry.set_alias("fraud", "nope", 4)  # rejected
    [event] = service.list_audit_events(action="model_version.retire")
    assert event.details == {
        "from_status": "candidate",
        "reason": "superseded by v3",
        "replacement_version": 3,
    }
    # Through transition(): deprecated -> retired needs a reason and no aliases.
    registry.transition("fraud", 3, "approved", reason="ok", override_gate=True)
    registry.transition("fraud", 3, "deprecated")
    with pytest.raises(InvalidInput, match="needs a reason"):
        registry.transition("fraud", 3, "retired")
    with pytest.raises(Conflict, match="aliased as champion"):
        registry.transition("fraud", 3, "retired", reason="done")


# -- resolution -------------------------------------------------------------------------------


def test_model_uris_resolve_by_version_alias_status_and_latest(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    src = f"runs:/{logged_run(service, tmp_path)}/model"
    for _ in range(4):
        registry.create_model_version("fraud", src)
    _walk(registry, 1, ["approved", "production"])
    _walk(registry, 2, ["approved", "production"])
    registry.set_alias("fraud", "champion", 1)
    registry.transition("fraud", 4, "rejected")
    cases = {
        "models:/fraud/3": 3,
        "fraud/3": 3,
        "models:/fraud@champion": 1,
        "fraud@champion": 1,
        "models:/fraud/production": 2,
        "fraud/production": 2,
        "models:/fraud/candidate": 3,
        "models:/fraud/rejected": 4,
        "models:/fraud/latest": 3,  # 4 is rejected
    }
    for uri, version in cases.items():
        assert registry.resolve(uri).version == version, uri
    with pytest.raises(NotFound, match="no version with status deprecated"):
        registry.resolve("models:/fraud/deprecated")
    with pytest.raises(NotFound, match="no version 9"):
        registry.resolve("models:/fraud/9")
    with pytest.raises(NotFound, match="no alias 'gone'"):
        registry.resolve("fraud@gone")
    with pytest.raises(NotFound, match="'ghost' does not exist"):
        registry.resolve("models:/ghost@champion")
    with pytest.raises(InvalidInput, match="accepted forms"):
        registry.resolve("models:/fraud")
    with pytest.raises(InvalidInput, match="accepted forms"):
        registry.resolve("runs:/abc/model")


# -- packages ---------------------------------------------------------------------------------


def test_materialize_builds_a_verified_cache_and_rebuilds_a_damaged_one(
    registry: RegistryService, backend: Backend, service: TrackingService, tmp_path: Path
) -> None:
    mv = registry.create_model_version("fraud", f"runs:/{logged_run(service, tmp_path)}/model")
    path = registry.materialize("fraud", 1)
    assert path == backend.settings.home_path / "cache" / "packages" / mv.package_digest
    assert (path / "model.onnx").read_bytes() == b"weights-1"
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.onnx"]
    assert registry.materialize("fraud", 1) == path  # reused
    (path / "model.onnx").write_bytes(b"weights-X")  # tampered cache: rebuilt from blobs
    assert (registry.materialize("fraud", 1) / "model.onnx").read_bytes() == b"weights-1"
    (path / "planted.py").write_text("import os")  # an extra file: rebuilt too
    assert not (registry.materialize("fraud", 1) / "planted.py").exists()
    # A version with the same package but another manifest.json (saved again later) shares
    # the folder: its manifest describes the same package digest.
    m = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**m, "created_time": 123456789}))
    assert registry.materialize("fraud", 1) == path
    assert json.loads((path / "manifest.json").read_text())["created_time"] == 123456789
    # Any change that alters the package digest is not accepted.
    (path / "manifest.json").write_text(json.dumps({**m, "task": "regression"}))
    registry.materialize("fraud", 1)
    assert json.loads((path / "manifest.json").read_text()) == m
    (path / "planted.py").write_text("import os")
    assert not (registry.materialize("fraud", 1) / "planted.py").exists()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no leftovers
    # A damaged blob in the artifact store is never served.
    blob = backend.artifacts.blob_path(mv.files["model.onnx"]["sha256"])
    blob.write_bytes(b"weights-Y")
    (path / "model.onnx").write_bytes(b"weights-Z")
    with pytest.raises(IntegrityError, match="tampered"):
        registry.materialize("fraud", 1)


def test_parallel_materializations_share_one_verified_folder(
    backend: Backend, service: TrackingService, tmp_path: Path
) -> None:
    registry = backend.registry(Actor("tester"))
    registry.create_model_version("fraud", f"runs:/{logged_run(service, tmp_path)}/model")
    paths: list[Path] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait()
            paths.append(backend.registry(Actor("w")).materialize("fraud", 1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(paths)) == 1
    assert (paths[0] / "model.onnx").read_bytes() == b"weights-1"
    assert [p.name for p in paths[0].parent.iterdir()] == [paths[0].name]


def test_download_package_copies_verified_files_and_is_audited(
    registry: RegistryService, backend: Backend, service: TrackingService, tmp_path: Path
) -> None:
    registry.create_model_version("fraud", f"runs:/{logged_run(service, tmp_path)}/model")
    dest = registry.download_package("fraud", 1, tmp_path / "out")
    assert (dest / "model.onnx").read_bytes() == b"weights-1"
    assert Manifest.from_dict(json.loads((dest / "manifest.json").read_text())).flavor == "onnx"
    with pytest.raises(Conflict, match="not an empty folder"):
        registry.download_package("fraud", 1, dest)
    [event] = service.list_audit_events(action="model_version.download")
    assert event.resource_id == "fraud/1" and event.details["via"] == "download_package"
    # A damaged blob fails the download and leaves nothing behind.
    sha = registry.get_model_version("fraud", 1).files["model.onnx"]["sha256"]
    backend.artifacts.blob_path(sha).write_bytes(b"weights-0")
    with pytest.raises(IntegrityError):
        registry.download_package("fraud", 1, tmp_path / "out2")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))) == [
        "out"
    ]
    assert len(service.list_audit_events(action="model_version.download")) == 1


# -- lineage ----------------------------------------------------------------------------------


def test_lineage_links_version_run_experiment_params_data_code_and_artifacts(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    run_id = logged_run(service, tmp_path)
    mv = registry.create_model_version("fraud", f"runs:/{run_id}/model")
    graph = registry.lineage("fraud", 1)
    json.dumps(graph)  # plain JSON
    nodes = {n["id"]: n for n in graph["nodes"]}
    root = "model_version:fraud/1"
    assert graph["root"] == root and graph["deployments"] == []
    run = service.get_run(run_id)
    assert nodes[f"run:{run_id}"]["data"]["name"] == run.name
    assert nodes[f"experiment:{run.experiment_id}"]["label"] == "fraud-training"
    assert nodes[f"params:{run_id}"]["data"]["params"] == {"max_depth": "4"}
    assert nodes["dataset:" + "d" * 64]["data"] == {"name": "train", "digest": "d" * 64}
    assert nodes[f"code:{GIT_COMMIT}"]["data"] == {"git_commit": GIT_COMMIT, "git_dirty": False}
    artifacts = {
        n["data"]["path"]: n["data"]["sha256"] for n in nodes.values() if n["kind"] == "artifact"
    }
    assert artifacts == {f"model/{p}": f["sha256"] for p, f in mv.files.items()}
    edges = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert (root, f"run:{run_id}", "produced_by") in edges
    assert (f"run:{run_id}", f"experiment:{run.experiment_id}", "in_experiment") in edges
    assert (f"run:{run_id}", f"params:{run_id}", "used_params") in edges
    assert (f"run:{run_id}", "dataset:" + "d" * 64, "training") in edges
    assert (f"run:{run_id}", f"code:{GIT_COMMIT}", "at_code") in edges
    assert (root, f"artifact:{run_id}:model/model.onnx", "packages") in edges
    assert {n["kind"] for n in graph["nodes"]} == {
        "model_version",
        "run",
        "experiment",
        "params",
        "dataset",
        "code",
        "artifact",
    }
    # A copy points back at its origin; a retired version at its replacement.
    registry.create_model_version("fraud", "models:/fraud/1")
    registry.retire("fraud", 1, reason="copied", replacement_version=2)
    copy_edges = {(e["from"], e["to"], e["kind"]) for e in registry.lineage("fraud", 2)["edges"]}
    assert ("model_version:fraud/2", root, "copied_from") in copy_edges
    old_edges = {(e["from"], e["to"], e["kind"]) for e in registry.lineage("fraud", 1)["edges"]}
    assert (root, "model_version:fraud/2", "replaced_by") in old_edges


# -- validation gate (real scikit-learn packages) ----------------------------------------------


def _frame(n: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    df["label"] = (df.x1 + df.x2 > 0).astype(int)
    return df


def _register_sklearn(
    registry: RegistryService,
    tracking: TrackingService,
    tmp_path: Path,
    model: Any,
    example: Any,
    name: str = "fraud",
) -> ModelVersion:
    from dockyard.registry.packaging import save_model

    exp = tracking.get_or_create_experiment("gate")
    run = tracking.start_run(exp.experiment_id)
    folder = tmp_path / f"sk-{run.run_id}"
    save_model(model, folder / "model", input_example=example.head())
    tracking.log_artifacts(run.run_id, folder / "model", "model")
    tracking.end_run(run.run_id)
    return registry.create_model_version(name, f"runs:/{run.run_id}/model")


def _models() -> dict[str, Any]:
    """champion: sees only x1 (about 75% accurate); better: sees both features; worse: learnt
    from shuffled labels; equal: the champion's exact recipe fitted again."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    train = _frame(400, 1)
    x, y = train[["x1", "x2"]], train["label"]
    blind = x.assign(x2=0.0)
    shuffled = np.random.default_rng(7).permutation(y.to_numpy())
    return {
        "champion": LogisticRegression().fit(blind, y),
        "better": LogisticRegression().fit(x, y),
        "worse": LogisticRegression().fit(x, shuffled),
        "equal": LogisticRegression().fit(blind, y),
        "example": x,
    }


def test_the_gate_gives_the_right_verdicts_for_better_worse_and_equal_candidates(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    models = _models()
    holdout = _frame(300, 2)
    reqs = ["accuracy>=0.7", "roc_auc>=champion-0.01"]
    ids = {
        kind: _register_sklearn(registry, service, tmp_path, models[kind], models["example"])
        for kind in ("champion", "better", "worse", "equal")
    }
    # The first model has no champion: relative checks pass with a note, absolute ones apply.
    first = registry.validate("fraud", 1, holdout, label="label", requirements=reqs)
    assert first.passed and first.against_version is None and first.num_rows == 300
    absolute, relative = first.checks
    assert absolute["passed"] and absolute["threshold"] == 0.7
    assert 0.7 <= absolute["candidate"] <= 0.85  # x1 alone: about 75% right
    assert relative["passed"] and relative["champion"] is None and "no champion" in relative["note"]
    assert first.metrics["champion"] is None
    assert registry.transition("fraud", 1, "approved").status == "approved"  # gate passed
    registry.set_alias("fraud", "champion", 1)
    champ = first.metrics["candidate"]

    better = registry.validate(
        "fraud",
        ids["better"].version,
        holdout,
        label="label",
        requirements=[*reqs, "accuracy>champion", "log_loss<champion"],
    )
    assert better.passed and better.against_version == 1
    assert better.metrics["champion"] == champ  # same data, same champion numbers
    assert [c["passed"] for c in better.checks] == [True, True, True, True]
    assert better.checks[1]["threshold"] == pytest.approx(champ["roc_auc"] - 0.01)
    assert better.metrics["candidate"]["accuracy"] > 0.95

    worse = registry.validate(
        "fraud", ids["worse"].version, holdout, label="label", requirements=reqs
    )
    assert not worse.passed
    assert [c["passed"] for c in worse.checks] == [False, False]
    assert worse.checks[1]["candidate"] < worse.checks[1]["champion"] - 0.01
    with pytest.raises(
        Conflict, match=re.escape("failed checks: accuracy>=0.7, roc_auc>=champion-0.01")
    ):
        registry.transition("fraud", ids["worse"].version, "approved")

    equal = registry.validate(
        "fraud",
        ids["equal"].version,
        holdout,
        label="label",
        requirements=["roc_auc>=champion", "accuracy==champion", "accuracy>champion"],
    )
    assert [c["passed"] for c in equal.checks] == [True, True, False]
    assert equal.metrics["candidate"] == equal.metrics["champion"] == champ
    assert not equal.passed
    # Every verdict is stored on its version; the version shows the latest one.
    assert registry.get_model_version("fraud", ids["worse"].version).validation == worse.to_dict()
    assert [r.id for r in registry.validations("fraud", 1)] == [first.id]
    assert first.data_digest == better.data_digest == worse.data_digest
    assert ValidationResult.from_dict(json.loads(json.dumps(worse.to_dict()))) == worse
    assert len(service.list_audit_events(action="model_version.validate")) == 4
    # against a version number and against a status work too.
    by_version = registry.validate(
        "fraud", ids["better"].version, holdout, label="label", against=1, requirements=reqs
    )
    assert by_version.against_version == 1 and by_version.passed
    by_status = registry.validate(
        "fraud", 2, holdout, label="label", against="approved", requirements=reqs
    )
    assert by_status.against_version == 1


def test_validate_refuses_bad_input_before_loading_anything(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    models = _models()
    _register_sklearn(registry, service, tmp_path, models["champion"], models["example"])
    holdout = _frame(50, 3)
    with pytest.raises(InvalidInput, match="unknown metric 'auc'"):
        registry.validate("fraud", 1, holdout, label="label", requirements=["auc>=0.8"])
    with pytest.raises(InvalidInput, match="no label column 'y'"):
        registry.validate("fraud", 1, holdout, label="y", requirements=["accuracy>=0.8"])
    with pytest.raises(InvalidInput, match="against"):
        registry.validate(
            "fraud", 1, holdout, label="label", against=None, requirements=["f1>=champion"]
        )
    with pytest.raises(InvalidInput, match="no rows"):
        registry.validate("fraud", 1, holdout.head(0), label="label", requirements=[])
    with pytest.raises(NotFound, match="no version 5"):
        registry.validate("fraud", 1, holdout, label="label", against=5, requirements=[])
    assert registry.validations("fraud", 1) == []


def test_validate_a_regression_model_from_records(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    from sklearn.linear_model import LinearRegression

    train = _frame(200, 4)
    x = train[["x1", "x2"]]
    model = LinearRegression().fit(x, 3 * train.x1 - train.x2)
    _register_sklearn(registry, service, tmp_path, model, x, name="price")
    holdout = _frame(40, 5)
    holdout["label"] = 3 * holdout.x1 - holdout.x2
    result = registry.validate(
        "price",
        1,
        holdout.to_dict(orient="records"),
        label="label",
        requirements=["r2>=0.99", "rmse<=0.001"],
    )
    assert result.passed, result.checks
    assert result.metrics["task"] == "regression"
    assert result.metrics["candidate"]["r2"] == pytest.approx(1.0)


def test_load_model_by_alias_predicts_like_the_original_and_is_audited(
    registry: RegistryService, service: TrackingService, tmp_path: Path
) -> None:
    models = _models()
    _register_sklearn(registry, service, tmp_path, models["better"], models["example"])
    registry.set_alias("fraud", "champion", 1)
    holdout = _frame(30, 6)[["x1", "x2"]]
    loaded = registry.load_model("models:/fraud@champion")
    assert (loaded.predict(holdout) == models["better"].predict(holdout)).all()
    [event] = service.list_audit_events(action="model_version.download")
    assert event.details["via"] == "load_model" and event.resource_id == "fraud/1"
