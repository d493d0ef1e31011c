"""Dataset description for tracking: digest, schema, describe_dataset."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dockyard.core.entities import DatasetInput
from dockyard.core.errors import InvalidInput
from dockyard.data import dataset as dataset_module
from dockyard.data.dataset import SCHEMA_TYPES, dataset_digest, describe_dataset, infer_schema


def sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "score": [0.5, np.nan, 1.25, -3.0],
            "name": ["a", "bb", None, "dddd"],
            "flag": [True, False, True, True],
            "kind": pd.Categorical(["x", "y", "x", "z"]),
            "at": pd.to_datetime(["2026-01-01", "2026-01-02", None, "2026-01-04"]).astype(
                "datetime64[ns]"
            ),
        }
    )


# --- dataset_digest ----------------------------------------------------------------------------


def test_digest_is_sha256_hex_and_repeatable() -> None:
    d = dataset_digest(sample())
    assert len(d) == 64 and set(d) <= set("0123456789abcdef")
    assert dataset_digest(sample()) == d
    assert dataset_digest(sample().copy(deep=True)) == d


def test_digest_is_the_same_in_another_process() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "import test_dataset as t; from dockyard.data.dataset import dataset_digest;"
        "print(dataset_digest(t.sample()))"
    )
    src = str(Path(dataset_module.__file__).parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code, src, str(Path(__file__).parent)],
        check=True,
        capture_output=True,
        text=True,
        # Another hash seed: nothing may depend on Python's per-process str hashing.
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert out.stdout.strip() == dataset_digest(sample())


def test_digest_golden_value() -> None:
    # Pins the canonical byte form: if this changes, old runs' digests no longer match, so
    # bump _DIGEST_VERSION in dataset.py on purpose rather than by accident.
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, np.nan, 2.0]})
    assert dataset_digest(df) == "dae1d1c7c2a27ed50b2ae1fa9aacb9357894c465d420ec22749d91b09435d5ef"


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(id=[1, 2, 3, 5]),
        lambda df: df.assign(score=[0.5, np.nan, 1.25, -3.5]),
        lambda df: df.assign(score=[0.5, 0.0, 1.25, -3.0]),  # NaN -> 0.0
        lambda df: df.assign(name=["a", "bb", "", "dddd"]),  # None -> ""
        lambda df: df.assign(name=["a", "b", "b", "dddd"]),  # same bytes, other split
        lambda df: df.assign(flag=[True, False, True, False]),
        lambda df: df.assign(kind=pd.Categorical(["x", "y", "x", "x"])),
        lambda df: df.assign(at=df["at"] + pd.Timedelta(seconds=1)),
        lambda df: df.rename(columns={"id": "ID"}),
        lambda df: df[["score", "id", "name", "flag", "kind", "at"]],  # column order
        lambda df: df.astype({"id": "float64"}),  # type
        lambda df: df.astype({"id": "int32"}),
        lambda df: df.iloc[:3],  # a row fewer
        lambda df: df.drop(columns="flag"),
    ],
)
def test_digest_changes_with_content(change) -> None:  # type: ignore[no-untyped-def]
    assert dataset_digest(change(sample())) != dataset_digest(sample())


def test_digest_ignores_physical_layout() -> None:
    df = sample()
    d = dataset_digest(df)
    # The index is not content.
    assert dataset_digest(df.set_axis([10, 20, 30, 40])) == d
    # Storage of strings and of missing floats does not matter.
    assert dataset_digest(df.astype({"name": object})) == d
    assert dataset_digest(df.astype({"score": "Float64"})) == d
    # A slice of a larger frame equals the same rows built afresh.
    big = pd.concat([df, df], ignore_index=True)
    assert dataset_digest(big.iloc[4:]) == d
    # Category codes and category order are not content: the values are.
    recoded = df.assign(kind=pd.Categorical(["x", "y", "x", "z"], categories=["z", "y", "x"]))
    assert dataset_digest(recoded) == d


def test_digest_does_not_depend_on_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    df = pd.DataFrame(
        {
            "i": np.arange(1_000),
            "f": np.where(np.arange(1_000) % 7 == 0, np.nan, np.arange(1_000) / 3),
            "s": [None if i % 5 == 0 else "v" * (i % 13) for i in range(1_000)],
            "b": np.arange(1_000) % 3 == 0,
        }
    )
    whole = dataset_digest(df)
    monkeypatch.setattr(dataset_module, "_CHUNK_ROWS", 37)
    assert dataset_digest(df) == whole


def test_digest_of_unusual_columns() -> None:
    df = pd.DataFrame(
        {
            "mixed": [1, "1", None],
            "dec": [decimal.Decimal("1.10"), None, decimal.Decimal("2.5")],
            "lists": [[1, 2], [], None],
            "nulls": [None, None, None],
            "delta": pd.to_timedelta([1, 2, None], unit="s"),
            "tz": pd.to_datetime(["2026-01-01", None, "2026-01-03"]).tz_localize("UTC"),
            "u8": np.array([1, 2, 3], dtype=np.uint8),
        }
    )
    d = dataset_digest(df)
    assert dataset_digest(df.copy()) == d
    # The int 1 and the string "1" are different values in an object column.
    assert dataset_digest(df.assign(mixed=[1, 1, None])) != d
    assert dataset_digest(df.assign(lists=[[1, 3], [], None])) != d


def test_digest_rejects_non_frames() -> None:
    with pytest.raises(InvalidInput, match="ndarray"):
        dataset_digest(np.zeros((2, 2)))  # type: ignore[arg-type]


# --- infer_schema ------------------------------------------------------------------------------


def test_infer_schema_types_and_nullability() -> None:
    df = pd.DataFrame(
        {
            "i64": [1, 2, 3],
            "u8": np.array([1, 2, 3], dtype=np.uint8),
            "nullable_int": pd.array([1, None, 3], dtype="Int64"),
            "f32": np.array([1.0, 2.0, 3.0], dtype=np.float32),
            "f_nan": [1.0, np.nan, 3.0],
            "dec": [decimal.Decimal("1.5"), decimal.Decimal("2"), None],
            "b": [True, False, True],
            "b_na": pd.array([True, None, False], dtype="boolean"),
            "b_obj": [True, None, False],
            "s": ["a", "b", "c"],
            "s_obj": pd.Series(["a", None, "c"], dtype=object),
            "mixed": [1, "a", 2.5],
            "cat": pd.Categorical(["a", "b", None]),
            "ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
            "ts_tz": pd.to_datetime(["2026-01-01", None, "2026-01-03"]).tz_localize("UTC"),
            "dates": [dt.date(2026, 1, 1), dt.date(2026, 1, 2), None],
            "empty": [None, None, None],
        }
    )
    schema = infer_schema(df)
    json.dumps(schema)  # JSON-serialisable
    got = {c["name"]: (c["type"], c["nullable"]) for c in schema["columns"]}
    assert got == {
        "i64": ("integer", False),
        "u8": ("integer", False),
        "nullable_int": ("integer", True),
        "f32": ("float", False),
        "f_nan": ("float", True),
        "dec": ("float", True),
        "b": ("boolean", False),
        "b_na": ("boolean", True),
        "b_obj": ("boolean", True),
        "s": ("string", False),
        "s_obj": ("string", True),
        "mixed": ("string", False),
        "cat": ("category", True),
        "ts": ("datetime", False),
        "ts_tz": ("datetime", True),
        "dates": ("datetime", True),
        "empty": ("string", True),
    }
    assert [c["name"] for c in schema["columns"]] == list(df.columns)
    assert all(c["type"] in SCHEMA_TYPES for c in schema["columns"])
    assert all(set(c) == {"name", "type", "nullable"} for c in schema["columns"])
    # describe_dataset computes the schema in its own pass; both must agree.
    assert describe_dataset(df, "d").schema == schema


def test_infer_schema_of_empty_frame() -> None:
    assert infer_schema(pd.DataFrame()) == {"columns": []}
    empty = pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype=object)})
    assert infer_schema(empty)["columns"] == [
        {"name": "a", "type": "integer", "nullable": False},
        {"name": "b", "type": "string", "nullable": False},
    ]


# --- describe_dataset --------------------------------------------------------------------------


def test_describe_dataframe() -> None:
    df = sample()
    info = describe_dataset(df, "fraud-jan", context="validation", source="s3://bucket/x")
    assert isinstance(info, DatasetInput)
    assert info.name == "fraud-jan" and info.context == "validation"
    assert info.digest == dataset_digest(df)
    assert info.num_rows == 4
    assert info.schema == infer_schema(df)
    assert info.source == "s3://bucket/x"
    # It travels as JSON and comes back equal.
    assert DatasetInput.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_describe_default_context_and_source() -> None:
    info = describe_dataset(sample(), "d")
    assert info.context == "training" and info.source is None


def test_describe_ndarray() -> None:
    arr = np.arange(12, dtype=np.float64).reshape(4, 3)
    info = describe_dataset(arr, "matrix")
    assert [c["name"] for c in info.schema["columns"]] == ["f0", "f1", "f2"]  # type: ignore[index]
    assert info.num_rows == 4
    assert info.digest == dataset_digest(pd.DataFrame(arr, columns=["f0", "f1", "f2"]))
    assert describe_dataset(np.arange(5), "vector").schema == {
        "columns": [{"name": "f0", "type": "integer", "nullable": False}]
    }
    with pytest.raises(InvalidInput, match="dimensional"):
        describe_dataset(np.zeros((2, 2, 2)), "cube")


def test_describe_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    sample().to_csv(path, index=False)
    info = describe_dataset(path, "csv", context="test")
    assert info.digest == dataset_digest(pd.read_csv(path))
    assert info.num_rows == 4
    assert info.source == path.resolve().as_uri()
    assert describe_dataset(str(path), "csv", context="test") == info
    assert describe_dataset(path, "csv", source="warehouse.table").source == "warehouse.table"


def test_describe_parquet_streams_and_matches_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = sample()
    path = tmp_path / "data.parquet"
    # A non-range index is stored as a column in the file; it is not content.
    df.set_axis(["r1", "r2", "r3", "r4"]).to_parquet(path)
    monkeypatch.setattr(dataset_module, "_CHUNK_ROWS", 3)  # several batches
    info = describe_dataset(path, "pq")
    assert info.digest == dataset_digest(df) == dataset_digest(pd.read_parquet(path))
    assert info.schema == infer_schema(df)
    assert info.num_rows == 4
    assert info.source == path.resolve().as_uri()


def test_describe_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    with pytest.raises(InvalidInput) as exc:
        describe_dataset(missing, "x")
    assert "not found" in exc.value.message and str(missing) in exc.value.message


@pytest.mark.parametrize("filename", ["data.json", "data.txt", "data"])
def test_describe_unsupported_file_type(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_text("{}")
    with pytest.raises(InvalidInput) as exc:
        describe_dataset(path, "x")
    assert "unsupported" in exc.value.message and filename in exc.value.message


def test_describe_unreadable_files(tmp_path: Path) -> None:
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match=r"bad\.parquet"):
        describe_dataset(bad_parquet, "x")
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("")
    with pytest.raises(InvalidInput, match=r"empty\.csv"):
        describe_dataset(empty_csv, "x")
    folder = tmp_path / "folder.parquet"
    folder.mkdir()
    with pytest.raises(InvalidInput, match="not found"):
        describe_dataset(folder, "x")


@pytest.mark.parametrize("data", [[1, 2, 3], {"a": [1]}, 42, None, pd.Series([1, 2])])
def test_describe_unsupported_data(data: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        describe_dataset(data, "x")  # type: ignore[arg-type]
    assert type(data).__name__ in exc.value.message


@pytest.mark.parametrize("context", ["training", "holdout", "shadow_eval", "a", "x" * 64])
def test_describe_accepts_identifier_contexts(context: str) -> None:
    assert describe_dataset(sample(), "d", context=context).context == context


@pytest.mark.parametrize(
    "context", ["", "Training", "1st", "_x", "with space", "dash-ed", "x" * 65, "tést", None, 3]
)
def test_describe_rejects_bad_contexts(context: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        describe_dataset(sample(), "d", context=context)  # type: ignore[arg-type]
    assert "context" in exc.value.message and repr(context) in exc.value.message


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 257, None])
def test_describe_rejects_bad_names(name: object) -> None:
    with pytest.raises(InvalidInput, match="name"):
        describe_dataset(sample(), name)  # type: ignore[arg-type]


def test_describe_rejects_bad_source() -> None:
    with pytest.raises(InvalidInput, match="source"):
        describe_dataset(sample(), "d", source=123)  # type: ignore[arg-type]


def test_importing_dockyard_data_does_not_import_pandas() -> None:
    src = str(Path(dataset_module.__file__).parents[2])
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dockyard.data, dockyard.data.dataset;"
        "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, src], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "[]"
