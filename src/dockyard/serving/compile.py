"""Compile a scikit-learn model package to ONNX Runtime, checked against the original.

``dockyard serve`` answers a scikit-learn model from its compiled form when one is cached: the
server then never imports scikit-learn, SciPy, pandas or skops (ready in well under a second
instead of about 2.5 s), and a batch costs microseconds of ONNX Runtime instead of
milliseconds of Python (see :mod:`dockyard.serving.compiled` for the serving side).

:func:`compile_package` runs in its own process (``python -m dockyard.serving.compile``,
started by the server after it loaded a model natively, or by ``dockyard serve --prepare``),
so the conversion never holds the server's interpreter lock. It

1. loads the verified package natively, with the server's skops type policy;
2. converts it with skl2onnx: string columns as string tensors, every other column as a
   double tensor, so imputation and scaling run in float64 exactly as scikit-learn computes
   them; tree ensembles then take float32, the precision skl2onnx writes their thresholds in
   (a double input compared with float32 thresholds sends values near a split the other way;
   float32 on both sides matches scikit-learn's float64 routing);
3. checks it: the input example and about two thousand rows made from it (the columns
   shuffled across rows and scaled, missing values, unseen categories) go through both
   models; every label must be the same, and every probability or regression value within
   ``1e-5`` (relative for values above 1). A model that fails, or that skl2onnx cannot
   convert, stays native, and the reason is recorded so the next start does not try again.

The result is a folder ``<cache>/compiled/<package digest>/`` with ``model.onnx`` and
``compiled.json`` (the package digest, the ONNX file's sha256, the versions that built it, the
check's figures and the warm-up example), written beside and renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from dockyard.artifacts._private import private_dir
from dockyard.serving.compiled import FORMAT, ONNX_FILE, RECORD, CompiledModel, read_compiled
from dockyard.serving.pool import argmax_classes

__all__ = ["NotCompilable", "compile_package", "convert", "main", "validation_frame"]

#: Largest difference accepted between a compiled model's and the native model's
#: probabilities (or regression values, relative above 1).
TOLERANCE: Final = 1e-5
VALIDATION_ROWS: Final = 2048


class NotCompilable(Exception):
    """The model cannot be compiled (or its compiled form does not answer the same)."""


# -- conversion ----------------------------------------------------------------------------------


def _patch_skl2onnx() -> None:
    """Two local fixes to skl2onnx 1.20, applied in the compiling process only.

    * Its histogram-gradient-boosting converter writes a Python ``False`` into an integer
      attribute for leaves, which protobuf 7 refuses ("Expected an int, got a boolean").
    * Its SimpleImputer converter emits ONNX's ``Imputer`` for double input, which ONNX
      Runtime implements for float32 only: double input gets ``Where(IsNaN(x), stats, x)``,
      exact in float64.
    """
    import numpy as np
    from skl2onnx import update_registered_converter
    from skl2onnx.common import tree_ensemble
    from skl2onnx.common.data_types import guess_numpy_type
    from skl2onnx.operator_converters import imputer_op
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.proto import onnx_proto
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    if not getattr(tree_ensemble, "_dockyard_patched", False):
        add_node = tree_ensemble.add_node

        def add_node_int_missing(*args: Any, **kwargs: Any) -> Any:
            if "nodes_missing_value_tracks_true" in kwargs:
                kwargs["nodes_missing_value_tracks_true"] = int(
                    kwargs["nodes_missing_value_tracks_true"]
                )
            return add_node(*args, **kwargs)

        tree_ensemble.add_node = add_node_int_missing
        tree_ensemble._dockyard_patched = True

    native = imputer_op.convert_sklearn_imputer

    def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
        op = operator.raw_operator
        if guess_numpy_type(operator.inputs[0].type) != np.float64 or not _nan_missing(op):
            native(scope, operator, container)
            return
        x = concatenate_variables(scope, operator.inputs, container)
        stats = scope.get_unique_variable_name("statistics")
        values = np.asarray(op.statistics_, dtype=np.float64)
        container.add_initializer(stats, onnx_proto.TensorProto.DOUBLE, [values.size], values)
        isnan = scope.get_unique_variable_name("isnan")
        container.add_node("IsNaN", [x], [isnan], name=scope.get_unique_operator_name("IsNaN"))
        container.add_node(
            "Where",
            [isnan, stats, x],
            [operator.outputs[0].full_name],
            name=scope.get_unique_operator_name("Where"),
        )

    update_registered_converter(
        SimpleImputer,
        "SklearnImputer",
        calculate_sklearn_imputer_output_shapes,
        convert_imputer,
        overwrite=True,
    )


def _nan_missing(op: Any) -> bool:
    mv = getattr(op, "missing_values", None)
    statistics = getattr(op, "statistics_", None)
    if statistics is None or getattr(op, "add_indicator", False):
        return False
    import numpy as np

    if not np.all(np.isfinite(np.asarray(statistics, dtype=np.float64))):
        return False  # a column with no value at all: scikit-learn drops it
    return isinstance(mv, float) and mv != mv


def _input_types(signature: dict[str, Any]) -> tuple[list[Any], dict[str, str]]:
    """skl2onnx initial types and, per input, the kind the server feeds: ``string`` or
    ``double``."""
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    schema = signature.get("inputs") or {}
    if schema.get("kind") == "tensor":
        shape = schema.get("shape") or []
        dtype = str(schema.get("dtype", ""))
        if len(shape) != 2 or shape[1] in (None, -1) or not dtype.startswith(("float", "int")):
            raise NotCompilable(f"tensor input {shape} of {dtype or 'unknown dtype'}")
        return [("X", DoubleTensorType([None, int(shape[1])]))], {"X": "double"}
    if schema.get("kind") != "columns":
        raise NotCompilable("the model has no input signature")
    types: list[Any] = []
    kinds: dict[str, str] = {}
    for col in schema["columns"]:
        typ = col["type"]
        if typ in ("string", "category"):
            types.append((col["name"], StringTensorType([None, 1])))
            kinds[col["name"]] = "string"
        elif typ in ("double", "float", "long", "integer", "boolean"):
            types.append((col["name"], DoubleTensorType([None, 1])))
            kinds[col["name"]] = "double"
        else:
            raise NotCompilable(f"column {col['name']!r} of type {typ!r}")
    return types, kinds


def _float_trees(model: Any) -> None:
    """Feed every tree ensemble float32 (see the module notes)."""
    from onnx import TensorProto, helper

    graph = model.graph
    for i, node in reversed(list(enumerate(graph.node))):
        if node.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            src = node.input[0]
            dst = f"{src}_as_float32_{i}"
            graph.node.insert(i, helper.make_node("Cast", [src], [dst], to=TensorProto.FLOAT))
            node.input[0] = dst


def convert(estimator: Any, signature: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """ONNX bytes for ``estimator`` and the feed kind of each input; NotCompilable if
    skl2onnx cannot convert it."""
    import warnings

    from sklearn.base import is_classifier

    _patch_skl2onnx()
    from skl2onnx import convert_sklearn

    types, kinds = _input_types(signature)
    options = {id(estimator): {"zipmap": False}} if is_classifier(estimator) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = convert_sklearn(
                estimator,
                initial_types=types,
                options=options,
                target_opset={"": 18, "ai.onnx.ml": 3},
            )
    except Exception as exc:  # skl2onnx raises many kinds (RuntimeError, MissingShapeCalculator...)
        raise NotCompilable(f"skl2onnx cannot convert it: {type(exc).__name__}: {exc}") from None
    _float_trees(onx)
    _declared_outputs(onx)
    return onx.SerializeToString(), kinds


def _declared_outputs(model: Any) -> None:
    """Cast every real-valued graph output to the type the graph declares for it. With double
    input, skl2onnx computes some outputs in float64 where it declares float32 (a logistic
    regression's probabilities) or the other way round (a tree regressor's value after
    :func:`_float_trees`); ONNX Runtime refuses such a graph. A Cast to the same type is a
    no-op."""
    from onnx import TensorProto, helper

    graph = model.graph
    real = {TensorProto.FLOAT, TensorProto.DOUBLE}
    for out in graph.output:
        to = out.type.tensor_type.elem_type
        if to not in real:
            continue
        for i, node in enumerate(graph.node):
            if out.name in node.output:
                k = list(node.output).index(out.name)
                node.output[k] = f"{out.name}_before_cast"
                cast = helper.make_node("Cast", [node.output[k]], [out.name], to=to)
                graph.node.insert(i + 1, cast)  # before any node that reads it
                break


# -- the check -----------------------------------------------------------------------------------


def validation_frame(example: Any, signature: dict[str, Any], rows: int = VALIDATION_ROWS) -> Any:
    """The input example and ``rows`` rows made from it: each column's values shuffled across
    rows; numbers scaled (x0, x0.5, x1, x1.5, x3, and negated) with some missing where the
    column allows it; strings with missing values and an unseen category."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    schema = signature.get("inputs") or {}
    if not isinstance(example, pd.DataFrame) or schema.get("kind") != "columns":
        arr = np.asarray(example, dtype=np.float64)
        if arr.ndim != 2 or len(arr) == 0:
            raise NotCompilable("the package has no input example to check the compiled model on")
        picks = arr[rng.integers(0, len(arr), size=(rows, arr.shape[1])), np.arange(arr.shape[1])]
        factors = rng.choice([0.0, 0.5, 1.0, 1.0, 1.5, 3.0, -1.0], size=picks.shape)
        return np.concatenate([arr, picks * factors])
    out: dict[str, Any] = {}
    for col in schema["columns"]:
        name, typ = col["name"], col["type"]
        base = example[name]
        picked = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
        if typ in ("double", "float"):
            factor = rng.choice([0.0, 0.5, 1.0, 1.0, 1.5, 3.0, -1.0], size=rows)
            values = picked.to_numpy(dtype=np.float64, na_value=np.nan) * factor
            values[rng.random(rows) < 0.05] = np.nan
            out[name] = pd.Series(values).astype(base.dtype)
        elif typ in ("long", "integer"):
            factor = rng.choice([0, 1, 1, 2, 3], size=rows)
            out[name] = (picked * factor).astype(base.dtype)
        elif typ in ("string", "category"):
            values = picked.astype(object).to_numpy().copy()
            values[rng.random(rows) < 0.05] = "__dockyard_unseen__"
            if col.get("nullable"):
                values[rng.random(rows) < 0.05] = None
            out[name] = pd.Series(values, dtype=base.dtype if typ == "string" else object)
        else:
            out[name] = picked
    synthetic = pd.DataFrame(out)
    return pd.concat([example.reset_index(drop=True), synthetic], ignore_index=True)


def check(native: Any, onnx_bytes: bytes, record: dict[str, Any], data: Any) -> dict[str, Any]:
    """Answer ``data`` with the native model and with the compiled one exactly as the server
    will (:class:`~dockyard.serving.compiled.CompiledModel`, its validation and labels);
    raise NotCompilable on any different answer; return the check's figures."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise NotCompilable(f"ONNX Runtime cannot run it: {type(exc).__name__}: {exc}") from None
    served = CompiledModel(native.manifest, session, record)
    try:
        prepared = served.prepare(data)
        if served.predict_both is not None:
            got, have = served.predict_both(prepared)
        else:
            got, have = served._adapter.predict(prepared), None
    except Exception as exc:
        raise NotCompilable(f"ONNX Runtime failed on it: {type(exc).__name__}: {exc}") from None
    expected = np.asarray(native.predict(data))
    got = np.asarray(got).reshape(expected.shape)
    figures: dict[str, Any] = {"rows": len(expected)}
    if native.task == "classification" or expected.dtype.kind in "OUSb":
        differ = int(np.sum(got.astype(expected.dtype) != expected))
        figures["labels_differ"] = differ
        if differ:
            raise NotCompilable(f"{differ} of {len(expected)} labels differ from scikit-learn's")
    else:
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        worst = float(np.max(diff / np.maximum(1.0, np.abs(expected)))) if diff.size else 0.0
        figures["max_difference"] = worst
        if not worst <= TOLERANCE:
            raise NotCompilable(f"values differ from scikit-learn's by up to {worst:.3g}")
    proba_fn = getattr(native, "predict_proba", None) if have is not None else None
    if proba_fn is not None:
        want = np.asarray(proba_fn(data), dtype=np.float64)
        have = np.asarray(have, dtype=np.float64)
        if have.shape != want.shape:
            raise NotCompilable(f"probabilities of shape {have.shape}, expected {want.shape}")
        worst = float(np.max(np.abs(have - want))) if want.size else 0.0
        figures["max_probability_difference"] = worst
        if not worst <= TOLERANCE:
            raise NotCompilable(f"probabilities differ from scikit-learn's by up to {worst:.3g}")
    return figures


# -- the compiled folder -------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("scikit-learn", "skl2onnx", "onnx", "onnxruntime"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


def _example_columns(example: Any) -> Any:
    """The input example as JSON (columns of plain values), for the warm-up."""
    from dockyard.registry.packaging.signature import json_safe

    if hasattr(example, "to_dict"):
        return {"columns": json_safe({str(k): list(v) for k, v in example.to_dict("list").items()})}
    return {"rows": json_safe(example.tolist())}


def _write(out_dir: Path, record: dict[str, Any], onnx_bytes: bytes | None) -> None:
    """Write the folder beside ``out_dir`` and rename it into place (replacing an old one)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name[:16]}-", dir=out_dir.parent))
    try:
        if onnx_bytes is not None:
            (tmp / ONNX_FILE).write_bytes(onnx_bytes)
        (tmp / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        if out_dir.exists():
            old = out_dir.with_name(f".old-{out_dir.name[:16]}-{os.getpid()}")
            os.rename(out_dir, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compile_package(
    package: Path,
    out_dir: Path,
    *,
    digest: str,
    trusted_modules: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Compile the package at ``package`` into ``out_dir``; returns the record written (its
    ``status`` is ``"compiled"`` or ``"native"`` with the ``reason``).

    One compiler at a time per package (a lock file beside the folder): the worker processes
    of one server all ask; the first compiles, the others find its sound folder and return."""
    # Private like the package cache: 0700, and never a folder another user owns or can write
    # to (a remote artifact root's cache is in the shared temporary folder).
    private_dir(out_dir.parent)
    with _locked(out_dir.with_name(f".{out_dir.name}.lock")):
        state = read_compiled(package, digest, out_dir.parent)
        if state.model is not None or (state.reason and not state.compile):
            return dict(json.loads((out_dir / RECORD).read_text()), reused=True)
        return _compile(package, out_dir, digest=digest, trusted_modules=trusted_modules)


@contextlib.contextmanager
def _locked(path: Path) -> Any:
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _compile(
    package: Path, out_dir: Path, *, digest: str, trusted_modules: Sequence[str] | None
) -> dict[str, Any]:
    from dockyard.registry import packaging

    started = time.perf_counter()
    record: dict[str, Any] = {
        "format": FORMAT,
        "package_digest": digest,
        "runtime": "onnxruntime",
        "versions": _versions(),
        "created_at": time.time(),
    }
    onnx_bytes: bytes | None = None
    try:
        native = packaging.load_model(
            package, expected_digest=digest, trusted_modules=trusted_modules
        )
        if native.flavor != "sklearn":
            raise NotCompilable(f"flavor {native.flavor!r} (only scikit-learn is compiled)")
        example = native.input_example
        if example is None:
            raise NotCompilable("the package has no input example to check the compiled model on")
        onnx_bytes, kinds = convert(native.raw, native.signature)
        data = validation_frame(example, native.signature)
        try:
            native.predict(data)
        except Exception as exc:
            raise NotCompilable(
                "scikit-learn refuses some inputs (missing values, unseen categories, scaled "
                f"numbers: {type(exc).__name__}) that a compiled model would answer"
            ) from None
        record.update(
            inputs=kinds,
            # The server labels a batch like scikit-learn does for these classifiers:
            # classes_[argmax(probabilities)], ties to the first class (ONNX Runtime's own
            # label breaks a tie of a forest's votes otherwise).
            labels="argmax" if argmax_classes(native.raw) is not None else "model",
        )
        record["check"] = check(native, onnx_bytes, record, data)
        record.update(
            status="compiled",
            onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            example=_example_columns(example),
        )
    except NotCompilable as exc:
        onnx_bytes = None
        record.update(status="native", reason=str(exc))
    except ImportError as exc:
        onnx_bytes = None
        record.update(
            status="native",
            reason=f"{exc.name or exc} is not installed (pip install 'dockyard[onnx]')",
            retry=True,
        )
    record["seconds"] = round(time.perf_counter() - started, 3)
    _write(out_dir, record, onnx_bytes)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dockyard.serving.compile")
    parser.add_argument("--package", required=True, type=Path)
    parser.add_argument("--digest", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--trusted-modules", default=None)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # never compete with the server for the cores
    trusted = None if args.trusted_modules is None else args.trusted_modules.split(",")
    try:
        record = compile_package(
            args.package, args.out, digest=args.digest, trusted_modules=trusted
        )
    except Exception as exc:  # report, never a traceback in the server's log
        print(json.dumps({"status": "error", "reason": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({k: v for k, v in record.items() if k != "example"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
