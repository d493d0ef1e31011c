"""The model registry end to end: a real server process, and the SDK's ``Client`` in remote mode.

A server is started the way ``dockyard server`` starts it, in a subprocess on a free loopback
port with its own ``DOCKYARD_HOME``. The same registry scenario -- log a model in a run,
register it, validate it against the champion, approve, alias, resolve ``models:/name@alias``,
load and predict, download, lineage, retire, and the mistakes -- runs through ``Client()`` in
local mode (a second home) and in remote mode against the server; what a user observes must be
equal once ids and clock times are replaced by stable labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from dockyard.client.client import Client
from dockyard.core.config import load_settings
from dockyard.core.entities import DatasetInput
from dockyard.core.errors import AlreadyExists, DockyardError, InvalidInput, NotFound

from ._server import Server

pytestmark = pytest.mark.e2e

_VOLATILE = {
    "creation_time",
    "last_update_time",
    "artifact_location",
    "time",
    "start_time",
    "end_time",
    "timestamp",
    "event_id",
}


def _client(home: Path, uri: str | None = None) -> Client:
    # The server acts for "anonymous" until tokens exist; act for the same principal locally.
    settings = load_settings(overrides={"home": str(home), "user": "anonymous"}, environ={})
    return Client(uri, settings=settings)


def _data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return x.assign(label=(x["a"] + x["b"] > 0).astype("int64"))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from dockyard.registry.packaging import save_model

    root = tmp_path_factory.mktemp("e2e-packages")
    data = _data(200, 0)
    x, y = data[["a", "b"]], data["label"]
    save_model(LogisticRegression().fit(x, y), root / "good", input_example=x.head())
    save_model(
        DummyClassifier(strategy="most_frequent").fit(x, y), root / "bad", input_example=x.head()
    )
    return {"good": root / "good", "bad": root / "bad"}


class Labels:
    """Replace run ids with stable labels and drop clock times."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def norm(self, obj: Any) -> Any:
        if hasattr(obj, "to_dict"):
            obj = obj.to_dict()
        if isinstance(obj, dict):
            return {self.norm(k): self.norm(v) for k, v in obj.items() if k not in _VOLATILE}
        if isinstance(obj, list | tuple):
            return [self.norm(v) for v in obj]
        if isinstance(obj, float) and not math.isfinite(obj):
            return repr(obj)
        if isinstance(obj, str):
            for value, label in self.names.items():
                obj = obj.replace(value, label)
        return obj


def _error(fn: Callable[[], Any], labels: Labels) -> tuple[str, str]:
    try:
        fn()
    except DockyardError as exc:
        return type(exc).__name__, labels.norm(exc.message)
    raise AssertionError("no error raised")


def _train_run(client: Client, package: Path, name: str, labels: Labels) -> str:
    run = client.start_run(client.get_or_create_experiment("registry").experiment_id, name=name)
    labels.names[run.run_id] = f"<{name}>"
    labels.names[run.run_id[:8]] = f"<{name}8>"
    client.log_params(run.run_id, {"model": name})
    client.log_metric(run.run_id, "acc", 0.9 if name == "good" else 0.5, step=0, timestamp=1)
    client.log_inputs(run.run_id, [DatasetInput("train", "d" * 64, "training", 200)])
    client.log_artifacts(run.run_id, package, "model")
    client.end_run(run.run_id, end_time=run.start_time + 1)
    return run.run_id


def scenario(client: Client, packages: dict[str, Path], work: Path) -> dict[str, Any]:
    labels = Labels()
    labels.names[str(work)] = "<work>"
    out: dict[str, Any] = {}
    good_run = _train_run(client, packages["good"], "good", labels)
    bad_run = _train_run(client, packages["bad"], "bad", labels)

    out["v1"] = labels.norm(client.create_model_version("fraud", f"runs:/{good_run}/model"))
    out["v2"] = labels.norm(
        client.create_model_version("fraud", f"runs:/{bad_run}/model", description="worse")
    )
    out["v3"] = labels.norm(client.create_model_version("fraud", "models:/fraud/1"))
    out["other"] = labels.norm(client.create_registered_model("other", "d", tags={"n": 1}))
    client.set_registered_model_tag("other", "team", "risk")
    out["other_updated"] = labels.norm(client.update_registered_model("other", "new"))
    client.set_model_version_tag("fraud", 3, "copy", True)
    out["v3_updated"] = labels.norm(client.update_model_version("fraud", 3, "a copy"))
    out["uploaded"] = labels.norm(client.register_package("uploaded", packages["good"]))

    holdout = _data(150, 1)
    first = client.validate("fraud", 1, holdout, label="label", requirements=["accuracy>=0.8"])
    out["validate_first"] = labels.norm(first)
    out["approved"] = labels.norm(client.transition("fraud", 1, "approved", reason="gate ok"))
    out["alias"] = labels.norm(client.set_alias("fraud", "champion", 1))
    worse = client.validate(
        "fraud",
        2,
        holdout.to_dict(orient="list"),
        label="label",
        requirements=["accuracy>=champion-0.01", "f1>=0.5"],
    )
    out["validate_worse"] = labels.norm(worse)
    out["rejected"] = labels.norm(client.transition("fraud", 2, "rejected", reason="worse"))
    out["production"] = labels.norm(client.transition("fraud", 1, "production"))
    out["resolved"] = labels.norm(
        [
            client.resolve(uri)
            for uri in (
                "models:/fraud@champion",
                "models:/fraud/production",
                "fraud/3",
                "fraud/latest",
            )
        ]
    )
    model = client.load_model("models:/fraud@champion")
    out["predictions"] = model.predict(holdout[["a", "b"]]).tolist()
    cached = client.materialize("fraud", 1)
    out["materialized"] = sorted(p.name for p in cached.iterdir())
    dest = client.download_package("fraud", 3, work / "download")
    out["download"] = {p.name: p.read_bytes().hex() for p in sorted(dest.iterdir())}
    out["retired"] = labels.norm(
        client.retire("fraud", 3, reason="duplicate", replacement_version=1)
    )
    out["lineage"] = labels.norm(client.lineage("fraud", 1))
    out["status_history"] = labels.norm([client.status_history("fraud", v) for v in (1, 2, 3)])
    out["alias_history"] = labels.norm(client.alias_history("fraud"))
    out["validations"] = labels.norm(client.validations("fraud", 2))
    page = client.list_model_versions("fraud", max_results=2)
    rest = client.list_model_versions("fraud", page_token=page.next_page_token, max_results=2)
    out["versions"] = labels.norm([page.items, rest.items, rest.next_page_token])
    out["by_status"] = labels.norm(client.list_model_versions("fraud", status=["retired"]).items)
    out["models"] = labels.norm(client.list_registered_models().items)
    out["model"] = labels.norm(client.get_registered_model("fraud"))

    out["errors"] = {
        "illegal": _error(lambda: client.transition("fraud", 1, "approved"), labels),
        "file_source": _error(lambda: client.create_model_version("x", "file:///etc"), labels),
        "abs_source": _error(lambda: client.create_model_version("x", "/etc/passwd"), labels),
        "http_source": _error(
            lambda: client.create_model_version("x", "http://example.com/m"), labels
        ),
        "dotdot_source": _error(lambda: client.create_model_version("x", "../x"), labels),
        "unknown_version": _error(lambda: client.get_model_version("fraud", 99), labels),
        "unknown_model": _error(lambda: client.get_registered_model("ghost"), labels),
        "unknown_alias": _error(lambda: client.resolve("models:/fraud@nobody"), labels),
        "bad_uri": _error(lambda: client.resolve("s3://bucket/x"), labels),
        "bad_name": _error(lambda: client.get_registered_model("a/b"), labels),
        "bad_alias": _error(lambda: client.set_alias("fraud", "Bad!", 1), labels),
        "alias_rejected": _error(lambda: client.set_alias("fraud", "x", 2), labels),
        "retire_production": _error(lambda: client.retire("fraud", 1, reason="r"), labels),
        "model_exists": _error(lambda: client.create_registered_model("other"), labels),
        "bad_requirement": _error(
            lambda: client.validate("fraud", 1, holdout, label="label", requirements=["x>1"]),
            labels,
        ),
        "no_label": _error(lambda: client.validate("fraud", 1, holdout, label="y"), labels),
        "download_exists": _error(
            lambda: client.download_package("fraud", 1, work / "download"), labels
        ),
    }
    events = client.list_audit_events(limit=10_000)
    out["audit"] = [
        (e.action, labels.norm(e.resource_id))
        for e in events
        if e.action.split(".")[0] in ("registered_model", "model_version", "alias")
        # Downloads are audited on both sides, but per package locally and per file fetched
        # from the server: compared separately below.
        and e.action != "model_version.download"
    ]
    out["downloaded"] = sorted(
        {labels.norm(e.resource_id) for e in events if e.action == "model_version.download"}
    )
    return out


def test_local_and_remote_registry_give_the_same_results(
    server: Server, packages: dict[str, Path], tmp_path: Path
) -> None:
    local = _client(tmp_path / "local-home")
    remote = _client(tmp_path / "remote-client-home", server.url)
    assert not local.is_remote and remote.is_remote
    expected = scenario(local, packages, tmp_path / "local-work")
    got = scenario(remote, packages, tmp_path / "remote-work")
    for key in expected:
        assert got[key] == expected[key], key
    assert got == expected
    # Spot checks that the scenario did what it says.
    assert expected["validate_first"]["passed"] is True
    assert expected["validate_worse"]["passed"] is False
    assert expected["errors"]["illegal"][0] == "Conflict"
    assert expected["errors"]["file_source"][0] == "InvalidInput"
    assert [v["version"] for v in expected["resolved"]] == [1, 1, 3, 3]


def test_remote_errors_are_the_service_classes(server: Server, tmp_path: Path) -> None:
    remote = _client(tmp_path / "home", server.url)
    with pytest.raises(NotFound):
        remote.get_registered_model("never-created")
    with pytest.raises(InvalidInput):
        remote.create_model_version("m", "file:///etc/passwd")
    remote.create_registered_model("errs")
    with pytest.raises(AlreadyExists):
        remote.create_registered_model("errs")
