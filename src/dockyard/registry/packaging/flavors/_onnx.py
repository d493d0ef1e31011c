"""The ONNX flavor: an ONNX model run with onnxruntime (CPU).

``save_model`` accepts an ``onnx.ModelProto``, the serialized bytes, or a path to a
``.onnx`` file; the bytes are checked by opening an onnxruntime session before anything is
written. Prediction feeds the validated input to the graph: one input takes the whole table
or tensor (cast to the input's element type); several inputs take the columns of the same
name, each as an ``(n, 1)`` tensor. ``predict`` returns the first output; ``predict_proba``
the ``probabilities`` output (or the second output), with a ZipMap (list of dicts) turned into
an array in the order of the class labels. Without an input example, the signature comes
from the graph's inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from dockyard.core.errors import InvalidInput
from dockyard.registry.packaging.flavors.base import (
    Adapter,
    SavedModel,
    dist_version,
    import_framework,
    requirement,
)
from dockyard.registry.packaging.manifest import Manifest

__all__ = ["load", "matches", "save"]

_ORT_TYPES: Final[dict[str, str]] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}
_COLUMN_TYPE: Final[dict[str, str]] = {
    "float32": "float",
    "float64": "double",
    "float16": "float",
    "int64": "long",
    "int32": "integer",
    "int16": "integer",
    "int8": "integer",
    "uint8": "integer",
    "bool": "boolean",
    "object": "string",
}


def matches(model: Any) -> bool:
    roots = {(c.__module__ or "").split(".")[0] for c in type(model).__mro__}
    return isinstance(model, bytes | bytearray) or "onnx" in roots


def _model_bytes(model: Any) -> bytes:
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_file():
            raise InvalidInput(f"ONNX model file not found: {os.fspath(model)!r}")
        return path.read_bytes()
    serialize = getattr(model, "SerializeToString", None)
    if callable(serialize):
        return bytes(serialize())
    raise InvalidInput(
        f"flavor 'onnx' needs an onnx.ModelProto, bytes or a .onnx path, not {type(model)}"
    )


def _session(data: bytes, where: str) -> Any:
    ort = import_framework("onnxruntime", "onnx")
    try:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise InvalidInput(
            f"{where} is not a valid ONNX model ({type(exc).__name__}: {exc})"
        ) from None


def _dtype(arg: Any) -> str:
    try:
        return _ORT_TYPES[arg.type]
    except KeyError:
        raise InvalidInput(f"ONNX input {arg.name!r} has unsupported type {arg.type}") from None


def _default_inputs(session: Any) -> dict[str, Any] | None:
    inputs = session.get_inputs()
    try:
        if len(inputs) == 1:
            arg = inputs[0]
            shape = [d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape]
            return {"kind": "tensor", "dtype": _dtype(arg), "shape": shape}
        return {
            "kind": "columns",
            "columns": [
                {
                    "name": arg.name,
                    "type": _COLUMN_TYPE[_dtype(arg)],
                    "nullable": _dtype(arg).startswith("float"),
                    "dtype": _dtype(arg),
                }
                for arg in inputs
            ],
        }
    except InvalidInput:
        return None


def _to_array(value: Any, dtype: str) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame | pd.Series):
        value = value.to_numpy()
    return np.asarray(value).astype(dtype, copy=False)


def _adapter(session: Any) -> Adapter:
    import numpy as np
    import pandas as pd

    inputs = session.get_inputs()
    outputs = session.get_outputs()
    names = [o.name for o in outputs]

    def feed(data: Any) -> dict[str, Any]:
        if len(inputs) == 1:
            return {inputs[0].name: _to_array(data, _dtype(inputs[0]))}
        if not isinstance(data, pd.DataFrame):
            raise InvalidInput(
                f"this ONNX model has {len(inputs)} inputs {[i.name for i in inputs]}: "
                "give a table with those columns"
            )
        missing = [i.name for i in inputs if i.name not in data.columns]
        if missing:
            raise InvalidInput(f"the ONNX model needs input column(s) {missing}")
        return {i.name: _to_array(data[i.name], _dtype(i)).reshape(-1, 1) for i in inputs}

    def predict(data: Any) -> Any:
        return np.asarray(session.run([names[0]], feed(data))[0])

    proba_name = (
        "probabilities" if "probabilities" in names else (names[1] if len(names) > 1 else None)
    )

    def predict_proba(data: Any) -> Any:
        value = session.run([proba_name], feed(data))[0]
        if isinstance(value, list):  # ZipMap: one {label: probability} per row
            if not value:
                return np.zeros((0, 0))
            keys = sorted(value[0])
            return np.asarray([[row[k] for k in keys] for row in value])
        return np.asarray(value)

    return Adapter(
        raw=session,
        predict=predict,
        predict_proba=predict_proba if proba_name is not None else None,
        default_inputs=_default_inputs(session),
    )


def save(model: Any, folder: Path, *, trust_pickle: bool, serialization: str | None) -> SavedModel:
    ort = import_framework("onnxruntime", "onnx")
    if serialization not in (None, "onnx"):
        raise InvalidInput("the onnx flavor writes ONNX only")
    data = _model_bytes(model)
    session = _session(data, "the model given")
    (folder / "model.onnx").write_bytes(data)
    adapter = _adapter(session)
    framework = {"name": "onnxruntime", "version": ort.__version__}
    onnx_version = dist_version("onnx")
    if onnx_version:
        framework["onnx"] = onnx_version
    return SavedModel(
        serialization="onnx",
        framework=framework,
        flavor_config={
            "model_file": "model.onnx",
            "inputs": [i.name for i in session.get_inputs()],
            "outputs": [o.name for o in session.get_outputs()],
        },
        requirements=[requirement("onnxruntime"), requirement("numpy")],
        adapter=adapter,
        task="classification" if adapter.predict_proba is not None else None,
    )


def load(
    manifest: Manifest,
    blobs: dict[str, bytes],
    *,
    trust_pickle: bool,
    trusted_modules: Sequence[str] | None = None,  # no Python objects are deserialised here
) -> Adapter:
    file = manifest.model_file()
    return _adapter(_session(blobs[file], f"model file {file!r}"))
