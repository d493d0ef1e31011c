"""The fluent model API: dy.log_model / dy.load_model / dy.register_model, and git source tags."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import dockyard as dy
from dockyard.client.fluent import GIT_COMMIT_TAG, GIT_DIRTY_TAG, git_source_tags


def _data(n: int = 200, seed: int = 0) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, n),
            "hour": rng.integers(0, 24, n).astype("int64"),
            "channel": rng.choice(["web", "pos"], n),
        }
    )
    y = ((x["amount"] > 100) ^ (x["channel"] == "web")).astype(int).to_numpy()
    return x, y


def _model(x: Any, y: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
            ("num", StandardScaler(), ["amount", "hour"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(x, y)


@pytest.fixture
def trained() -> tuple[Any, Any, Any]:
    x, y = _data()
    return _model(x, y), x, y


def test_log_model_and_load_by_run_uri_predicts_the_same(
    sdk_store: Path, trained: tuple[Any, Any, Any]
) -> None:
    import numpy as np

    model, x, _ = trained
    with dy.start_run(experiment="models") as run:
        info = dy.log_model(model, "model", input_example=x.head(5))
    assert isinstance(info, dy.ModelInfo) and isinstance(info, str)
    assert info == f"runs:/{run.run_id}/model" == info.model_uri
    assert info.run_id == run.run_id and info.artifact_path == "model"
    assert info.flavor == "sklearn" and info.version is None and info.registered_uri is None
    files = {f.path for f in dy.get_client().list_artifacts(run.run_id, "model")}
    assert "model/manifest.json" in files and "model/model.skops" in files
    loaded = dy.load_model(info)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert np.allclose(loaded.predict_proba(x), model.predict_proba(x))
    strict = dy.load_model(info, extra_columns="reject")
    with pytest.raises(dy.InvalidInput, match="extra"):
        strict.predict(x.assign(surprise=1.0))
    with pytest.raises(dy.InvalidInput, match="extra_columns"):
        dy.load_model(info, extra_columns="ignore")


def test_the_extra_columns_setting_is_the_default(
    home: Path, trained: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dockyard.client.fluent as fluent

    model, x, _ = trained
    with dy.start_run(experiment="models"):
        info = dy.log_model(model, "model", input_example=x.head(5))
    monkeypatch.setenv("DOCKYARD_MODEL_EXTRA_COLUMNS", "reject")
    monkeypatch.setattr(fluent, "_client", None)  # settings are read when the client is made
    with pytest.raises(dy.InvalidInput, match="extra"):
        dy.load_model(info).predict(x.assign(surprise=1.0))
    # The argument wins over the setting.
    with pytest.warns(UserWarning, match="surprise"):
        dy.load_model(info, extra_columns="drop").predict(x.assign(surprise=1.0))
    monkeypatch.setenv("DOCKYARD_MODEL_EXTRA_COLUMNS", "ignore")
    monkeypatch.setattr(fluent, "_client", None)
    with pytest.raises(dy.InvalidInput, match="DOCKYARD_MODEL_EXTRA_COLUMNS"):
        dy.load_model(info)


def test_log_model_registers_and_load_by_alias_and_version(
    sdk_store: Path, trained: tuple[Any, Any, Any]
) -> None:
    import numpy as np

    model, x, _ = trained
    with dy.start_run() as run:
        info = dy.log_model(model, "clf", input_example=x.head(3), registered_model_name="fraud")
    assert info.registered_model_name == "fraud" and info.version == 1
    assert info.registered_uri == "models:/fraud/1"
    assert info.model_version is not None and info.model_version.run_id == run.run_id
    client = dy.get_client()
    client.set_alias("fraud", "champion", 1)
    for uri in ("models:/fraud/1", "models:/fraud@champion", "models:/fraud/latest"):
        assert np.array_equal(dy.load_model(uri).predict(x), model.predict(x)), uri
    # register_model: from the run URI again (version 2), and from a local package folder.
    mv2 = dy.register_model(info.model_uri, "fraud")
    assert (mv2.name, mv2.version, mv2.status) == ("fraud", 2, "candidate")
    assert mv2.package_digest == info.model_version.package_digest


def test_register_model_from_a_local_package_folder(
    sdk_store: Path, tmp_path: Path, trained: tuple[Any, Any, Any]
) -> None:
    import numpy as np

    from dockyard.registry.packaging import save_model

    model, x, _ = trained
    pkg = tmp_path / "pkg"
    save_model(model, pkg, input_example=x.head(2))
    assert np.array_equal(dy.load_model(pkg).predict(x), model.predict(x))  # a local folder
    mv = dy.register_model(pkg, "local-fraud")
    assert mv.version == 1 and mv.run_id is None
    assert np.array_equal(dy.load_model("models:/local-fraud/1").predict(x), model.predict(x))


def test_a_tampered_package_is_never_loaded(home: Path, trained: tuple[Any, Any, Any]) -> None:
    """The local cache is checked on every load: a tampered cached file is not loaded (the
    cache is rebuilt from the verified blobs); a tampered blob in the artifact store, the
    source of truth, is refused with IntegrityError."""
    import numpy as np

    model, x, _ = trained
    with dy.start_run():
        info = dy.log_model(model, "model", input_example=x.head(3), registered_model_name="m")
    assert info.model_version is not None
    dy.load_model("models:/m/1")  # materialises the cache
    [cached] = list((home / "cache" / "packages").rglob("model.skops"))
    original = cached.read_bytes()
    cached.chmod(0o600)
    cached.write_bytes(original + b"tampered")
    loaded = dy.load_model("models:/m/1")
    assert np.array_equal(loaded.predict(x), model.predict(x))
    [cached] = list((home / "cache" / "packages").rglob("model.skops"))
    assert cached.read_bytes() == original

    # Now the stored blob itself (and the cache) are altered: refused, nothing deserialised.
    digest = info.model_version.files["model.skops"]["sha256"]
    client = dy.get_client()
    blob = client.registry.artifacts.blob_path(digest)
    for path in (blob, cached):
        path.chmod(0o600)
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(dy.IntegrityError):
        dy.load_model("models:/m/1")


def test_load_refuses_a_tampered_local_manifest(
    home: Path, tmp_path: Path, trained: tuple[Any, Any, Any]
) -> None:
    from dockyard.registry.packaging import save_model

    model, x, _ = trained
    pkg = tmp_path / "pkg"
    save_model(model, pkg, input_example=x.head(2))
    manifest = json.loads((pkg / "manifest.json").read_text())
    [name] = [n for n in manifest["files"] if n.endswith(".skops")]
    (pkg / name).write_bytes(b"not a model")
    with pytest.raises(dy.IntegrityError, match=name.replace(".", r"\.")):
        dy.load_model(pkg)


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/model",
        "file:///etc",
        "s3://bucket/model",
        "/definitely/not/here",
        "runs:/nope/model",
        "runs:/" + "0" * 32,
        "models:/",
    ],
)
def test_load_model_refuses_what_it_cannot_load(home: Path, uri: str) -> None:
    with pytest.raises((dy.InvalidInput, dy.NotFound)):
        dy.load_model(uri)


def test_log_model_needs_an_active_run_and_a_clean_path(
    home: Path, trained: tuple[Any, Any, Any]
) -> None:
    model, _, _ = trained
    with pytest.raises(dy.InvalidInput, match="no active run"):
        dy.log_model(model)
    with dy.start_run():
        for bad in ("", "../escape", "/abs"):
            with pytest.raises(dy.InvalidInput):
                dy.log_model(model, bad)


def test_register_model_refuses_unsafe_sources(home: Path) -> None:
    for source in ("file:///etc", "/etc/passwd", "../x", "//proc/self/root", "http://x/y"):
        with pytest.raises(dy.InvalidInput):
            dy.register_model(source, "fraud")
    with pytest.raises(dy.NotFound):
        dy.get_client().get_registered_model("fraud")


# -- git source tags ------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q")
    (path / "train.py").write_text("print('train')\n")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "first")
    return path


def test_start_run_records_the_git_commit_and_dirty_flag(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    (repo / "notes.txt").write_text("untracked files do not make the tree dirty\n")
    with dy.start_run() as clean:
        pass
    (repo / "train.py").write_text("print('changed')\n")
    with dy.start_run() as dirty, dy.start_run(nested=True) as child:
        pass
    with dy.start_run(tags={GIT_COMMIT_TAG: "mine"}) as own:
        pass
    client = dy.get_client()
    assert client.get_run(clean.run_id).tags[GIT_COMMIT_TAG] == head
    assert client.get_run(clean.run_id).tags[GIT_DIRTY_TAG] == "false"
    assert client.get_run(dirty.run_id).tags[GIT_DIRTY_TAG] == "true"
    assert client.get_run(child.run_id).tags == client.get_run(dirty.run_id).tags
    assert client.get_run(own.run_id).tags == {GIT_COMMIT_TAG: "mine"}


def test_no_git_tags_outside_a_repository_or_without_git(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(outside)
    assert git_source_tags() == {}
    with dy.start_run() as run:
        pass
    assert GIT_COMMIT_TAG not in dy.get_client().get_run(run.run_id).tags
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # git cannot be found
    assert git_source_tags(str(outside)) == {}


def test_a_registered_version_records_the_code_version(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, trained: tuple[Any, Any, Any]
) -> None:
    model, x, _ = trained
    monkeypatch.chdir(repo)
    with dy.start_run():
        info = dy.log_model(model, input_example=x.head(2), registered_model_name="coded")
    assert info.model_version is not None
    code = info.model_version.code
    assert len(code["git_commit"]) == 40 and code["git_dirty"] in (False, "false")
