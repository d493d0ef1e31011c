"""Model packages: manifest, integrity checks, trust policy and signature enforcement."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from dockyard.core.errors import IntegrityError, InvalidInput, PermissionDenied, UnsafePath
from dockyard.data.synthetic import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    make_fraud_transactions,
)
from dockyard.registry.packaging import (
    LoadedModel,
    Manifest,
    ModelInputError,
    UntrustedModel,
    infer_signature,
    load_model,
    package_digest,
    read_manifest,
    save_model,
)
from dockyard.registry.packaging.manifest import sha256_bytes
from dockyard.registry.packaging.trust import dangerous_types

from ._models import category_encoder

# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_fraud_transactions(300, random_state=3)


@pytest.fixture(scope="module")
def pipeline(frame: pd.DataFrame, features: pd.DataFrame) -> Any:
    classifier = HistGradientBoostingClassifier(max_iter=15, random_state=0)
    model = make_pipeline(category_encoder(), classifier)
    return model.fit(features, frame[LABEL_COLUMN])


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, pipeline: Any, features: Any) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "model"
    save_model(pipeline, path, input_example=features.head())
    return path


@pytest.fixture(scope="module")
def loaded(package: Path) -> LoadedModel:
    return load_model(package)


def _copy(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for file in src.iterdir():
        (dest / file.name).write_bytes(file.read_bytes())
    return dest


def _edit_manifest(path: Path, edit: Any) -> None:
    data = json.loads((path / "manifest.json").read_text())
    edit(data)
    (path / "manifest.json").write_text(json.dumps(data))


def _rewrite_file(path: Path, name: str, data: bytes) -> None:
    """Replace a package file and fix its manifest entry (what a careful attacker would do)."""
    (path / name).write_bytes(data)

    def fix(manifest: dict[str, Any]) -> None:
        manifest["files"][name] = {"sha256": sha256_bytes(data), "size": len(data)}

    _edit_manifest(path, fix)


def double(x: Any) -> Any:
    """A user function: skops records it as a type outside its defaults."""
    return x * 2


# -- save / manifest --------------------------------------------------------------------------


def test_package_layout_and_manifest(package: Path, pipeline: Any) -> None:
    names = sorted(p.name for p in package.iterdir())
    assert names == ["input_example.json", "manifest.json", "model.skops", "requirements.txt"]
    manifest = read_manifest(package)
    assert manifest.flavor == "sklearn"
    assert manifest.serialization == "skops"
    assert manifest.trusted_pickle is False
    assert manifest.task == "classification"
    assert manifest.framework["name"] == "scikit-learn"
    assert manifest.signature["classes"] == [0, 1]
    assert set(manifest.files) == {"input_example.json", "model.skops", "requirements.txt"}
    for name, entry in manifest.files.items():
        data = (package / name).read_bytes()
        assert entry == {"sha256": sha256_bytes(data), "size": len(data)}
    assert any(r.startswith("skops==") for r in manifest.requirements)
    assert (package / "requirements.txt").read_text().splitlines() == manifest.requirements
    # HistGradientBoosting's TreePredictor is outside skops' defaults: recorded at save.
    assert manifest.skops_trusted_types == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]
    inputs = manifest.signature["inputs"]
    assert inputs["kind"] == "columns"
    assert [c["name"] for c in inputs["columns"]] == list(FEATURE_COLUMNS)
    types = {c["name"]: c["type"] for c in inputs["columns"]}
    assert types["merchant_category"] == "category"
    assert types["amount"] == "double"
    assert types["hour"] == "long"
    assert types["is_foreign"] == "boolean"
    assert manifest.signature["outputs"] == {"kind": "tensor", "dtype": "int64", "shape": [-1]}


def test_digest_is_stable_and_covers_trust_fields(package: Path) -> None:
    manifest = read_manifest(package)
    assert manifest.digest == package_digest(manifest) == package_digest(manifest.to_dict())
    assert len(manifest.digest) == 64
    data = manifest.to_dict()
    data["created_time"] += 1  # bookkeeping: not covered
    assert package_digest(data) == manifest.digest
    for key, value in [
        ("skops_trusted_types", ["os.system"]),
        ("trusted_pickle", True),
        ("flavor", "python_function"),
        ("signature", {"inputs": None, "outputs": None, "classes": None}),
    ]:
        assert package_digest({**manifest.to_dict(), key: value}) != manifest.digest
    assert Manifest.from_dict(manifest.to_dict()) == manifest


def test_save_refuses_non_empty_folder_and_leaves_nothing_behind(
    tmp_path: Path, pipeline: Any
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "x").write_text("x")
    with pytest.raises(Exception, match=r"not empty"):
        save_model(pipeline, dest)
    empty = tmp_path / "empty"
    empty.mkdir()
    save_model(pipeline, empty)  # an empty folder is fine
    assert (empty / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]


def test_failed_save_leaves_no_folder(tmp_path: Path) -> None:
    class Broken:
        def predict(self, x: Any) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(InvalidInput, match=r"failed to predict on input_example"):
        save_model(Broken(), tmp_path / "m", input_example=np.zeros((2, 3)), trust_pickle=True)
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot tell how to save"):
        save_model(object(), tmp_path / "m")
    with pytest.raises(InvalidInput, match=r"unknown flavor"):
        save_model(object(), tmp_path / "m", flavor="tensorflow")


def test_without_example_the_signature_is_open(
    tmp_path: Path, pipeline: Any, features: Any
) -> None:
    manifest = save_model(pipeline, tmp_path / "m")
    assert manifest.signature["inputs"] is None
    assert manifest.input_example is None
    model = load_model(tmp_path / "m")
    np.testing.assert_array_equal(model.predict(features), pipeline.predict(features))


# -- integrity --------------------------------------------------------------------------------


def test_round_trip_with_expected_digest(package: Path, pipeline: Any, features: Any) -> None:
    digest = read_manifest(package).digest
    model = load_model(package, expected_digest=digest)
    np.testing.assert_array_equal(model.predict(features), pipeline.predict(features))
    assert load_model(package, expected_digest=f"sha256:{digest.upper()}").digest == digest


def test_loading_a_package_again_gives_an_independent_model_and_still_verifies(
    tmp_path: Path, package: Path, pipeline: Any, features: Any
) -> None:
    pkg = _copy(package, tmp_path / "again")
    first, second = load_model(pkg), load_model(pkg)
    assert first.raw is not second.raw
    first.raw.set_params(memory="changed")  # a change to one copy does not reach the other
    assert second.raw.get_params()["memory"] is None
    assert load_model(pkg).raw.get_params()["memory"] is None
    np.testing.assert_array_equal(second.predict(features), pipeline.predict(features))
    # Deserialised before, but the files are checked on every load all the same.
    data = bytearray((pkg / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0x01
    (pkg / "model.skops").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"'model.skops' does not match its sha256"):
        load_model(pkg)


@pytest.mark.parametrize("name", ["model.skops", "input_example.json", "requirements.txt"])
def test_flipped_byte_is_refused(tmp_path: Path, package: Path, name: str) -> None:
    pkg = _copy(package, tmp_path / "p")
    data = bytearray((pkg / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (pkg / name).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"'{name}' does not match its sha256") as err:
        load_model(pkg)
    assert err.value.details["path"] == name


def test_resized_missing_extra_and_linked_files_are_refused(tmp_path: Path, package: Path) -> None:
    pkg = _copy(package, tmp_path / "resized")
    (pkg / "model.skops").write_bytes((pkg / "model.skops").read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"'model.skops' has .* bytes"):
        load_model(pkg)

    pkg = _copy(package, tmp_path / "missing")
    (pkg / "requirements.txt").unlink()
    with pytest.raises(
        IntegrityError, match=r"'requirements.txt' listed in the manifest is missing"
    ):
        load_model(pkg)

    pkg = _copy(package, tmp_path / "extra")
    (pkg / "evil.pkl").write_bytes(b"x")
    with pytest.raises(IntegrityError, match=r"does not list: 'evil.pkl'"):
        load_model(pkg)

    pkg = _copy(package, tmp_path / "linked")
    real = tmp_path / "elsewhere.skops"
    real.write_bytes((pkg / "model.skops").read_bytes())
    (pkg / "model.skops").unlink()
    os.symlink(real, pkg / "model.skops")
    with pytest.raises(IntegrityError, match=r"'model.skops' is a symbolic link"):
        load_model(pkg)


def test_edited_manifest_is_refused_by_digest(tmp_path: Path, package: Path) -> None:
    digest = read_manifest(package).digest
    pkg = _copy(package, tmp_path / "p")

    def loosen(data: dict[str, Any]) -> None:
        data["signature"]["inputs"]["columns"][0]["nullable"] = True

    _edit_manifest(pkg, loosen)
    with pytest.raises(IntegrityError, match=r"manifest.json does not match the recorded") as err:
        load_model(pkg, expected_digest=digest)
    assert err.value.details["path"] == "manifest.json"
    # Without the registry's digest the manifest is all there is: it loads.
    assert load_model(pkg).signature["inputs"]["columns"][0]["nullable"] is True


@pytest.mark.parametrize(
    "bad",
    ["../escape.bin", "/etc/passwd", "a/../../b", "..%2fx", "C:/x", "a\\b", "~/.ssh/id", "a//b"],
)
def test_manifest_paths_that_escape_are_refused(tmp_path: Path, package: Path, bad: str) -> None:
    pkg = _copy(package, tmp_path / "p")
    _edit_manifest(pkg, lambda d: d["files"].update({bad: {"sha256": "0" * 64, "size": 1}}))
    with pytest.raises(UnsafePath):
        load_model(pkg)


def test_model_file_and_example_paths_that_escape_are_refused(
    tmp_path: Path, package: Path
) -> None:
    pkg = _copy(package, tmp_path / "p1")
    _edit_manifest(pkg, lambda d: d["flavor_config"].update({"model_file": "../model.skops"}))
    with pytest.raises(UnsafePath):
        load_model(pkg)
    pkg = _copy(package, tmp_path / "p2")
    _edit_manifest(pkg, lambda d: d.update({"input_example": "/etc/passwd"}))
    with pytest.raises(UnsafePath):
        load_model(pkg)
    pkg = _copy(package, tmp_path / "p3")
    _edit_manifest(pkg, lambda d: d["files"].update({"manifest.json": d["files"]["model.skops"]}))
    with pytest.raises(UnsafePath, match=r"manifest.json"):
        load_model(pkg)


def test_malformed_manifests_are_refused(tmp_path: Path, package: Path) -> None:
    cases: list[tuple[Any, str]] = [
        (lambda d: d.update(format_version=2), "newer than this Dockyard"),
        (lambda d: d.update(flavor="tensorflow"), "unknown flavor"),
        (lambda d: d.update(serialization="pickle"), "requires trusted_pickle: true"),
        (lambda d: d["files"]["model.skops"].update(sha256="xyz"), "64 lowercase hex"),
        (lambda d: d["files"]["model.skops"].update(size=-1), "non-negative"),
        (lambda d: d.update(surprise=1), "unknown field"),
    ]
    for i, (edit, message) in enumerate(cases):
        pkg = _copy(package, tmp_path / f"p{i}")
        _edit_manifest(pkg, edit)
        with pytest.raises(InvalidInput, match=message):
            load_model(pkg)
    pkg = _copy(package, tmp_path / "notjson")
    (pkg / "manifest.json").write_text("{nope")
    with pytest.raises(InvalidInput, match=r"not valid JSON"):
        load_model(pkg)
    with pytest.raises(Exception, match=r"no manifest.json"):
        load_model(tmp_path)


# -- trust: skops types and pickle ------------------------------------------------------------


@pytest.fixture(scope="module")
def custom_function_package(tmp_path_factory: pytest.TempPathFactory, frame: Any) -> Path:
    x = frame[list(NUMERIC_COLUMNS)].fillna(0)
    model = make_pipeline(FunctionTransformer(double), DecisionTreeClassifier(max_depth=3))
    model.fit(x, frame[LABEL_COLUMN])
    path = tmp_path_factory.mktemp("custom") / "model"
    save_model(model, path, input_example=x.head())
    return path


def test_types_accepted_at_save_are_recorded_and_trusted(
    custom_function_package: Path, frame: Any
) -> None:
    manifest = read_manifest(custom_function_package)
    assert f"{__name__}.double" in manifest.skops_trusted_types
    model = load_model(custom_function_package, expected_digest=manifest.digest)
    assert model.predict(frame[list(NUMERIC_COLUMNS)].fillna(0)).shape == (300,)


def test_untrusted_skops_type_is_refused_naming_it(
    tmp_path: Path, custom_function_package: Path
) -> None:
    pkg = _copy(custom_function_package, tmp_path / "p")
    _edit_manifest(pkg, lambda d: d.update(skops_trusted_types=[]))
    with pytest.raises(UntrustedModel, match=rf"{__name__}\.double") as err:
        load_model(pkg)
    assert isinstance(err.value, PermissionDenied)
    assert f"{__name__}.double" in err.value.details["types"]


def test_swapped_skops_file_with_new_types_is_refused(
    tmp_path: Path, package: Path, custom_function_package: Path
) -> None:
    """A model file replaced (and re-hashed) by one needing types the manifest never accepted."""
    pkg = _copy(package, tmp_path / "p")
    _rewrite_file(pkg, "model.skops", (custom_function_package / "model.skops").read_bytes())
    with pytest.raises(UntrustedModel, match=rf"{__name__}\.double"):
        load_model(pkg)


def test_dangerous_types_are_refused_at_save_and_at_load(
    tmp_path: Path, package: Path, frame: Any
) -> None:
    import skops.io as sio

    evil = make_pipeline(FunctionTransformer(eval))
    with pytest.raises(UntrustedModel, match=r"builtins\.eval"):
        save_model(evil, tmp_path / "evil")
    assert not (tmp_path / "evil").exists()

    # Hand-crafted: the file needs builtins.eval and the manifest claims to trust it.
    pkg = _copy(package, tmp_path / "p")
    _rewrite_file(pkg, "model.skops", sio.dumps(evil))
    _edit_manifest(pkg, lambda d: d.update(skops_trusted_types=["builtins.eval"]))
    with pytest.raises(UntrustedModel, match=r"builtins\.eval"):
        load_model(pkg)
    # The deny list wins over the recorded list even for a harmless file.
    pkg = _copy(package, tmp_path / "q")
    _edit_manifest(
        pkg, lambda d: d["skops_trusted_types"].extend(["os.system", "subprocess.Popen"])
    )
    with pytest.raises(UntrustedModel, match=r"os\.system, subprocess\.Popen"):
        load_model(pkg)


def test_dangerous_type_list() -> None:
    bad = [
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "os.system",
        "posix.system",
        "subprocess.Popen",
        "importlib.import_module",
        "sys.modules",
        "operator.attrgetter",
    ]
    fine = ["numpy.ndarray", "sklearn.linear_model._logistic.LogisticRegression", "osmium.X"]
    assert dangerous_types(bad + fine) == sorted(bad)


def test_pickle_needs_trust_on_save_and_on_load(
    tmp_path: Path, pipeline: Any, features: Any
) -> None:
    with pytest.raises(UntrustedModel, match=r"trust_pickle=True"):
        save_model(pipeline, tmp_path / "refused", serialization="cloudpickle")
    assert not (tmp_path / "refused").exists()

    for kind in ("cloudpickle", "pickle", "joblib"):
        path = tmp_path / kind
        manifest = save_model(
            pipeline, path, serialization=kind, trust_pickle=True, input_example=features.head()
        )
        assert manifest.trusted_pickle is True
        assert manifest.serialization == kind
        assert manifest.skops_trusted_types == []
        with pytest.raises(UntrustedModel, match=r"trust_pickle=True") as err:
            load_model(path)
        assert err.value.details["flag"] == "trust_pickle"
        assert manifest.model_file() in err.value.message
        model = load_model(path, trust_pickle=True, expected_digest=manifest.digest)
        np.testing.assert_array_equal(model.predict(features), pipeline.predict(features))
        np.testing.assert_array_equal(
            model.predict_proba(features), pipeline.predict_proba(features)
        )


def test_pickle_flag_cannot_be_edited_away(tmp_path: Path, pipeline: Any) -> None:
    path = tmp_path / "m"
    manifest = save_model(pipeline, path, serialization="pickle", trust_pickle=True)
    pkg = _copy(path, tmp_path / "p")
    _edit_manifest(pkg, lambda d: d.update(trusted_pickle=False))
    with pytest.raises(InvalidInput, match=r"requires trusted_pickle"):
        load_model(pkg, trust_pickle=True)
    pkg = _copy(path, tmp_path / "q")
    _edit_manifest(pkg, lambda d: d.update(serialization="skops"))  # pretend it is safe
    with pytest.raises(IntegrityError):
        load_model(pkg, expected_digest=manifest.digest)
    with pytest.raises(UntrustedModel, match=r"not a readable skops file"):
        load_model(pkg)


# -- signature enforcement --------------------------------------------------------------------


def test_predict_accepts_every_input_form(
    loaded: LoadedModel, pipeline: Any, features: pd.DataFrame
) -> None:
    expected = pipeline.predict(features)
    shuffled = features[list(reversed(features.columns))]
    np.testing.assert_array_equal(loaded.predict(shuffled), expected)
    np.testing.assert_array_equal(loaded.predict(features.to_dict("records")), expected)
    np.testing.assert_array_equal(loaded.predict(features.to_dict("list")), expected)
    as_strings = features.astype({c: object for c in CATEGORICAL_COLUMNS})
    np.testing.assert_array_equal(loaded.predict(as_strings), expected)
    array = features.to_numpy(dtype=object)  # a 2-D array maps to the columns in order
    np.testing.assert_array_equal(loaded.predict(array), expected)
    one = features.iloc[0].to_dict()
    np.testing.assert_array_equal(loaded.predict(one), expected[:1])
    proba = loaded.predict_proba(features.to_dict("records"))
    np.testing.assert_array_equal(proba, pipeline.predict_proba(features))


def test_safe_casts_are_applied(loaded: LoadedModel, pipeline: Any, features: Any) -> None:
    cast = features.copy()
    cast["hour"] = cast["hour"].astype("float64")  # whole floats -> long
    cast["amount"] = np.round(cast["amount"]).astype("int64")  # int -> double widening
    cast["is_foreign"] = cast["is_foreign"].astype("int64")  # 0/1 -> boolean
    prepared = loaded.prepare(cast)
    assert prepared["hour"].dtype == np.int64
    assert prepared["amount"].dtype == np.float64
    assert prepared["is_foreign"].dtype == bool
    assert isinstance(prepared["merchant_category"].dtype, pd.CategoricalDtype)
    assert list(prepared.columns) == list(FEATURE_COLUMNS)
    expected_input = features.copy()
    expected_input["amount"] = np.round(expected_input["amount"])
    np.testing.assert_array_equal(loaded.predict(cast), pipeline.predict(expected_input))


def _rule(err: pytest.ExceptionInfo[ModelInputError]) -> tuple[str, str | None]:
    return err.value.details["rule"], err.value.details.get("column")


def test_missing_column(loaded: LoadedModel, features: Any) -> None:
    with pytest.raises(ModelInputError, match=r"missing column\(s\) 'amount'.*missing_column") as e:
        loaded.predict(features.drop(columns=["amount"]))
    assert _rule(e) == ("missing_column", "amount")


def test_string_in_double_column(loaded: LoadedModel, features: Any) -> None:
    bad = features.astype({"amount": object})
    bad.loc[bad.index[3], "amount"] = "12.5 EUR"
    with pytest.raises(ModelInputError, match=r"column 'amount': wrong type: expected double") as e:
        loaded.predict(bad)
    assert "'12.5 EUR'" in e.value.message
    assert _rule(e) == ("wrong_type", "amount")
    records = features.head(2).to_dict("records")
    records[1]["amount"] = "abc"
    with pytest.raises(ModelInputError, match=r"column 'amount': wrong type"):
        loaded.predict(records)


def test_fractional_float_in_integer_column(loaded: LoadedModel, features: Any) -> None:
    bad = features.astype({"hour": "float64"})
    bad.loc[bad.index[0], "hour"] = 2.5
    with pytest.raises(
        ModelInputError, match=r"column 'hour': wrong type: expected long.*2\.5"
    ) as e:
        loaded.predict(bad)
    assert _rule(e) == ("wrong_type", "hour")


def test_null_in_non_nullable_column(loaded: LoadedModel, features: Any) -> None:
    bad = features.astype({"customer_age": "float64"})
    bad.loc[bad.index[[1, 4]], "customer_age"] = np.nan
    with pytest.raises(
        ModelInputError, match=r"column 'customer_age': null/NaN.*position 1, 4"
    ) as e:
        loaded.predict(bad)
    assert _rule(e) == ("not_nullable", "customer_age")
    records = features.head(2).to_dict("records")
    records[0]["channel"] = None
    with pytest.raises(ModelInputError, match=r"column 'channel': null"):
        loaded.predict(records)
    # NaN is a float value: double columns are nullable by default.
    ok = features.copy()
    ok.loc[ok.index[0], "amount"] = np.nan
    assert loaded.predict(ok).shape == (len(ok),)


def test_wrong_types_for_boolean_string_and_category(loaded: LoadedModel, features: Any) -> None:
    bad = features.astype({"is_foreign": object})
    bad.loc[bad.index[0], "is_foreign"] = "yes"
    with pytest.raises(ModelInputError, match=r"column 'is_foreign': wrong type: expected boolean"):
        loaded.predict(bad)
    bad = features.copy()
    bad["is_foreign"] = bad["is_foreign"].astype("int64") * 2
    with pytest.raises(ModelInputError, match=r"column 'is_foreign': wrong type.*0/1"):
        loaded.predict(bad)
    bad = features.astype({"channel": object})
    bad.loc[bad.index[0], "channel"] = 7
    with pytest.raises(ModelInputError, match=r"column 'channel': wrong type: expected category"):
        loaded.predict(bad)


def test_extra_columns_drop_warns_once_or_reject(
    package: Path, pipeline: Any, features: Any, frame: Any
) -> None:
    model = load_model(package)
    with_extra = frame  # holds the id, the timestamp and the label too
    with pytest.warns(UserWarning, match=r"'transaction_id', 'timestamp', 'is_fraud'"):
        result = model.predict(with_extra)
    np.testing.assert_array_equal(result, pipeline.predict(features))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(with_extra)  # once per column name
    with pytest.raises(ModelInputError, match=r"extra column\(s\) 'transaction_id'.*reject") as e:
        model.predict(with_extra, extra_columns="reject")
    assert _rule(e) == ("extra_column", "transaction_id")
    strict = load_model(package, extra_columns="reject")
    with pytest.raises(ModelInputError, match=r"extra_column"):
        strict.predict(with_extra)
    with pytest.raises(InvalidInput, match=r"extra_columns must be one of"):
        load_model(package, extra_columns="keep")


def test_array_of_the_wrong_width_and_odd_inputs(loaded: LoadedModel, features: Any) -> None:
    with pytest.raises(ModelInputError, match=r"shape \(300, 11\).*12 columns") as e:
        loaded.predict(features.iloc[:, :-1].to_numpy(dtype=object))
    assert _rule(e)[0] == "wrong_shape"
    with pytest.raises(ModelInputError, match=r"cannot predict on a str"):
        loaded.predict("amount=3")
    with pytest.raises(ModelInputError, match=r"same number of values"):
        loaded.predict({"amount": [1.0, 2.0], "hour": [1]})
    with pytest.raises(ModelInputError, match=r"input is empty"):
        loaded.predict(features.head(0))


def test_tensor_signature(tmp_path: Path, frame: Any) -> None:
    x = frame[["amount", "hour", "card_age_days"]].fillna(0).to_numpy()
    y = frame[LABEL_COLUMN].to_numpy()
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
    manifest = save_model(model, tmp_path / "m", input_example=x[:5])
    assert manifest.signature["inputs"] == {"kind": "tensor", "dtype": "float64", "shape": [-1, 3]}
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.predict(x.tolist()), model.predict(x))
    np.testing.assert_array_equal(loaded.predict(x.astype(np.int64)), model.predict(x.astype(int)))
    with pytest.raises(ModelInputError, match=r"wrong shape \(300, 2\): expected \(any, 3\)") as e:
        loaded.predict(x[:, :2])
    assert _rule(e) == ("wrong_shape", None)
    with pytest.raises(ModelInputError, match=r"wrong shape"):
        loaded.predict(x[0])
    with pytest.raises(ModelInputError, match=r"wrong type"):
        loaded.predict(np.array([["a", "b", "c"]]))
    np.testing.assert_array_equal(loaded.input_example, x[:5])


def test_infer_signature_forms() -> None:
    frame = pd.DataFrame(
        {
            "i32": np.array([1, 2], dtype=np.int32),
            "i64": [1, 2],
            "f32": np.array([1.0, 2.0], dtype=np.float32),
            "f64": [1.0, None],
            "s": ["a", None],
            "b": [True, False],
            "t": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "c": pd.Categorical(["x", "y"]),
            "n": pd.array([1, None], dtype="Int64"),
        }
    )
    sig = infer_signature(frame, np.array([0, 1]))
    cols = {c["name"]: (c["type"], c["nullable"]) for c in sig["inputs"]["columns"]}
    assert cols == {
        "i32": ("integer", False),
        "i64": ("long", False),
        "f32": ("float", True),
        "f64": ("double", True),
        "s": ("string", True),
        "b": ("boolean", False),
        "t": ("datetime", False),
        "c": ("category", False),
        "n": ("long", True),
    }
    assert sig["outputs"] == {"kind": "tensor", "dtype": "int64", "shape": [-1]}
    assert infer_signature({"a": [1, 2], "b": ["x", "y"]})["inputs"]["columns"][1]["type"] == (
        "string"
    )
    assert [c["name"] for c in infer_signature([{"a": 1.5}, {"a": 2.0}])["inputs"]["columns"]] == [
        "a"
    ]
    assert infer_signature(np.zeros((4, 2, 3), dtype=np.float32))["inputs"] == {
        "kind": "tensor",
        "dtype": "float32",
        "shape": [-1, 2, 3],
    }
    with pytest.raises(InvalidInput, match=r"cannot infer a signature from a str"):
        infer_signature("nope")
    with pytest.raises(InvalidInput, match=r"column 'x'"):
        infer_signature(pd.DataFrame({"x": [{"a": 1}]}))


def test_explicit_signature_and_datetimes(tmp_path: Path, frame: Any) -> None:
    class HourOf:
        def predict(self, data: pd.DataFrame) -> Any:
            return data["timestamp"].dt.hour.to_numpy()

    example = frame[["timestamp"]].head()
    manifest = save_model(HourOf(), tmp_path / "m", input_example=example, trust_pickle=True)
    assert manifest.serialization == "cloudpickle"  # a local class: skops cannot import it
    model = load_model(tmp_path / "m", trust_pickle=True)
    records = [{"timestamp": "2026-01-01T05:30:00"}, {"timestamp": "2026-01-02 23:00"}]
    np.testing.assert_array_equal(model.predict(records), [5, 23])
    with pytest.raises(ModelInputError, match=r"column 'timestamp': wrong type: expected datetime"):
        model.predict([{"timestamp": "yesterday"}])
    with pytest.raises(ModelInputError, match=r"column 'timestamp': wrong type"):
        model.predict([{"timestamp": 3.5}])

    sig = {"inputs": {"kind": "columns", "columns": [{"name": "timestamp", "type": "datetime"}]}}
    manifest = save_model(HourOf(), tmp_path / "n", signature=sig, trust_pickle=True)
    assert manifest.signature["inputs"]["columns"][0]["nullable"] is False
    with pytest.raises(InvalidInput, match=r"unknown type 'date'"):
        save_model(
            HourOf(),
            tmp_path / "o",
            trust_pickle=True,
            signature={"inputs": {"kind": "columns", "columns": [{"name": "t", "type": "date"}]}},
        )


def test_import_is_light() -> None:
    import subprocess

    code = (
        "import dockyard.registry, dockyard.registry.packaging as p, sys\n"
        "p.ModelInputError, p.UntrustedModel\n"
        "heavy = {'numpy', 'pandas', 'sklearn', 'skops', 'xgboost', 'lightgbm', 'onnxruntime'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_FAST_SPECS = [
    {"name": "f", "type": "double", "nullable": True, "dtype": "float64"},
    {"name": "f32", "type": "float", "nullable": True, "dtype": "float32"},
    {"name": "i", "type": "long", "nullable": False, "dtype": "int64"},
    {"name": "i8", "type": "integer", "nullable": False, "dtype": "int8"},
    {"name": "u", "type": "long", "nullable": False, "dtype": "uint64"},
    {"name": "b", "type": "boolean", "nullable": False, "dtype": "bool"},
    {"name": "s", "type": "string", "nullable": False, "dtype": "str"},
    {"name": "so", "type": "string", "nullable": False, "dtype": "object"},
    {"name": "ni", "type": "long", "nullable": True, "dtype": "Int64"},
]
_FAST_VALUES = {
    "f": [[1.5, 2, None, float("nan")], [2**60, 1.0], [True], ["x"]],
    "f32": [[1.5, 2, None], [1e300]],
    "i": [[1, -5], [2.0, 3], [2**63], [None], [True]],
    "i8": [[1, -100], [300]],
    "u": [[1, 5], [-1], [2**63]],
    "b": [[True, False], [1, 0], [2], [None]],
    "s": [["a", "b"], ["a", None], [3]],
    "so": [["a", "zz"]],
    "ni": [[1, None]],
}


@pytest.mark.parametrize(
    ("spec", "values"),
    [(s, v) for s in _FAST_SPECS for v in _FAST_VALUES[s["name"]]],
)
def test_prepare_input_of_plain_column_lists_equals_the_full_path(
    spec: dict[str, Any], values: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dicts of plain JSON lists are cast with NumPy directly: the same frame (dtypes
    included) as the full pandas path, and the same refusal message when refused."""
    from dockyard.registry.packaging import signature as sig

    schema = {"kind": "columns", "columns": [spec, dict(_FAST_SPECS[0], name="k")]}
    data = {spec["name"]: values, "k": [1.0] * len(values)}

    def outcome() -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return sig.prepare_input(schema, dict(data))
        except ModelInputError as exc:
            return exc.message

    fast = outcome()
    monkeypatch.setattr(sig, "_fast_columns", lambda columns, data: None)
    full = outcome()
    if isinstance(full, str):
        assert fast == full
    else:
        pd.testing.assert_frame_equal(fast, full, check_exact=True)
