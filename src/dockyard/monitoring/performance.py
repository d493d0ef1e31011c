"""Model performance in production: realised metrics once labels arrive, A/B verdicts, and
estimated performance before they do.

Pure functions over arrays and prediction-log tables; NumPy does the work, pyarrow reads the
columns, scikit-learn is imported only to calibrate (:func:`estimate_performance`). Every
result is a JSON-safe dict: no NaN or infinity anywhere, an undefined value is ``None``.

Realised metrics (equal to ``sklearn.metrics`` on the same data, see the tests)
    * :func:`classification_metrics`: ``accuracy``; ``precision``/``recall``/``f1`` of the
      positive class for two classes (sklearn's ``average="binary"``), macro averages over the
      labels present in ``y_true`` or ``y_pred`` otherwise (sklearn's default label set); a
      0/0 ratio is 0.0 (sklearn's ``zero_division`` default). ``roc_auc`` needs ``proba``:
      binary = AUC of the positive class's column (a 1-D ``proba`` is that score);
      multiclass = one-vs-rest macro AUC (sklearn's ``multi_class="ovr"``) over the classes
      present in ``y_true``; ``None`` when ``y_true`` has fewer than two classes (sklearn
      would raise).
    * Labels are compared as **canonical text**: ``True`` -> ``"true"``, an integral float
      ``1.0`` -> ``"1"``, other numbers as their shortest text, strings as they are; so a
      label ingested as ``"1"`` or ``1.0`` matches a prediction ``1``. Classes sort
      numerically when every one is a number, else as text (sklearn's order for numbers).
    * **Positive class** (binary): ``positive=`` if given, else the second of the sorted
      ``classes`` (given or seen), like sklearn's ``pos_label=1`` for 0/1 labels. When only
      one class is seen and no ``classes`` are given: ``"0"``/``"false"`` means the positive
      class ``"1"``/``"true"`` is absent (sklearn's values: precision, recall, f1 = 0),
      ``"1"``/``"true"`` is itself the positive class, any other single class leaves
      precision, recall and f1 ``None`` (pass ``positive=`` or ``classes=``).
    * :func:`regression_metrics`: ``mae``, ``rmse``, ``r2`` (sklearn's ``r2_score``, ``None``
      below 2 rows), ``bias`` = mean(prediction - label). Rows with a non-finite label or
      prediction are left out (``n`` counts the rows used).

By variant (:func:`performance_by_variant`)
    Only ``status == 200`` rows (others counted as ``errors``). Live variants leave out
    ``forced`` rows (a debug header chose the variant, which breaks the random assignment);
    they are counted as ``forced_rows``. Shadow rows (``shadow`` true) form their own entries
    flagged ``"shadow": true`` (keyed ``"<variant> (shadow)"`` if a live variant has the same
    name) and keep forced rows, since forcing changes which live variant answered, not what
    the shadow saw. ``coverage`` = labeled / rows.

    **Task rule** (when ``task`` is not given): classification if any row has ``proba``, or
    predictions are not numbers (text, booleans); regression if a numeric prediction has a
    fractional part; otherwise (integral numbers) regression only when predictions and labels
    together take more than 20 distinct values.

    ``roc_auc`` per variant is computed when every labeled row has ``proba`` of one width and
    the column order is known: ``classes=``, else the sorted classes when they are as many
    as the columns and agree with ``argmax(proba)`` -> prediction, else the order read off
    ``argmax(proba)`` -> prediction when every column is someone's argmax; otherwise ``None``.

A/B verdicts (:func:`compare_variants`)
    ``accuracy`` and ``error_rate``: pooled two-proportion z-test (two-sided), the
    difference B - A with its unpooled (Wald) CI, and the rows per variant needed to detect
    the observed difference at ``alpha`` with ``power`` (Fleiss' formula without continuity
    correction:
    ``n = (z_{1-a/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2))^2 / (p1 - p2)^2``).
    ``roc_auc`` with two classes: DeLong's test for two independent samples (AUC variance from
    the structural components with midranks; var(B - A) = var(A) + var(B)), normal CI and
    p-value. Other metrics (``precision``, ``recall``, ``f1``, multiclass ``roc_auc``,
    ``mae``, ``rmse``): a seeded percentile bootstrap of B - A over ``n_boot`` resamples of
    each variant, significant when the CI excludes 0; its ``p_value`` is the two-sided
    bootstrap tail share, floored at ``1 / n_boot`` (shown as ``p<=`` in the verdict).
    Precision/recall/F1 resample the confusion matrix (a multinomial draw over its cells *is*
    a row resample, at O(n_boot k^2) whatever the rows); mae/rmse resample the rows' errors
    in bounded chunks; the multiclass AUC resamples rows as multinomial weights (the slow
    one: about 1 s per 10,000 rows per class at 1000 resamples). The rows per variant still
    needed (DeLong and bootstrap) come from the standard error scaled as 1/sqrt(n):
    ``n_needed = n * ((z_{1-a/2} + z_{power}) * se / |d|)^2``. Higher is better except for
    ``error_rate``, ``mae``, ``rmse``. ``method`` says which test ran: ``z_test``,
    ``delong`` or ``bootstrap``.

Estimated performance (:func:`estimate_performance`, the idea of NannyML's CBPE)
    With calibrated probabilities, each prediction is right with the probability the model
    gave its predicted class, so expected accuracy = mean of that probability. Binary:
    expected confusion matrix (TP = sum of p over predicted positives, FP = sum of 1 - p over
    them, FN = sum of p over predicted negatives), hence precision, recall, F1; expected ROC
    AUC = area under the expected ROC curve (rows ranked by the model's *raw* score, each
    adding p to the true-positive and 1 - p to the false-positive mass). Multiclass: the same
    one-vs-rest per class, macro-averaged. Calibration, when labeled ``calibration`` rows are
    given: isotonic regression (sklearn, clipped to [0, 1]) of the positive-class probability
    for binary; for multiclass one isotonic regression per class (one-vs-rest), then each row
    renormalised to sum 1 (as sklearn's ``CalibratedClassifierCV`` does). Without it the
    probabilities are assumed calibrated. Predictions are ``argmax(proba)`` unless ``y_pred``
    is given; the positive class is the second of the sorted classes unless ``positive=``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Final

from dockyard.core.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "HIGHER_IS_BETTER",
    "classification_metrics",
    "compare_variants",
    "detect_task",
    "estimate_performance",
    "performance_by_variant",
    "regression_metrics",
    "variant_rows",
]

#: Metrics :func:`compare_variants` knows, and whether a higher value is better.
HIGHER_IS_BETTER: Final[dict[str, bool]] = {
    "accuracy": True,
    "error_rate": False,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "mae": False,
    "rmse": False,
}
#: Distinct integral values above which numeric predictions are taken for a regression.
REGRESSION_DISTINCT: Final = 20
# Bootstrap weights generated per step: bounds memory (rows x resamples per chunk).
_BOOT_CELLS: Final = 4_000_000
_NORMAL: Final = NormalDist()


# ================================================================================================
# Labels as canonical text
# ================================================================================================


def _to_arrow(values: Any) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        return values
    if type(values).__module__.startswith("pandas"):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        if values.dtype == object:
            return pa.array(values.tolist())
        return pa.array(values)
    try:
        return pa.array(list(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        from dockyard.serving.predlog import _canonical

        return pa.array([_canonical(v) for v in values], pa.string())


def _canonical_text(arr: pa.Array) -> pa.Array:
    """Labels / predictions as canonical text (see the module notes), nulls kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr.cast(pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(arr, pa.scalar("true"), pa.scalar("false"))
    if pa.types.is_integer(t):
        return arr.cast(pa.string())
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = pc.cast(arr, pa.float64(), safe=False)
        f = pc.if_else(pc.is_nan(f), pa.scalar(None, pa.float64()), f)
        integral = pc.fill_null(pc.and_(pc.is_finite(f), pc.equal(pc.floor(f), f)), False)
        small = pc.fill_null(pc.less(pc.abs(f), 2.0**53), False)
        as_int = pc.and_(integral, small)
        ints = pc.cast(pc.if_else(as_int, f, 0.0), pa.int64(), safe=False).cast(pa.string())
        return pc.if_else(as_int, ints, f.cast(pa.string()))
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    from dockyard.serving.predlog import _canonical

    return pa.array([_canonical(v) for v in arr.to_pylist()], pa.string())


def _sort_classes(names: Sequence[str]) -> list[str]:
    try:
        nums = [float(s) for s in names]
    except ValueError:
        return sorted(names)
    if any(math.isnan(x) for x in nums):
        return sorted(names)
    return [s for _, s in sorted(zip(nums, names, strict=True))]


def _encode(
    y_true: pa.Array, y_pred: pa.Array, classes: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Integer codes of both sides over one class list; (codes_true, codes_pred, classes,
    seen) where ``classes`` = given classes (canonical) + any other seen, sorted, and
    ``seen`` = the classes present in either side, in class order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    # Encode each side on its raw values, canonicalise only the (few) distinct values.
    idx_parts, dict_parts, offset = [], [], 0
    for side in (y_true, y_pred):
        raw = side.cast(side.type.value_type) if pa.types.is_dictionary(side.type) else side
        enc_side = pc.dictionary_encode(raw)
        idx_parts.append(
            np.asarray(enc_side.indices.to_numpy(zero_copy_only=False), dtype=np.int64) + offset
        )
        dict_parts.append(_canonical_text(enc_side.dictionary))
        offset += len(enc_side.dictionary)
    canon = pc.dictionary_encode(pa.concat_arrays(dict_parts))
    dictionary = canon.dictionary.to_pylist()
    to_canon = np.asarray(canon.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    if classes is not None:
        given = [_canonical_text(_to_arrow([c])).to_pylist()[0] for c in classes]
        if len(set(given)) != len(given):
            raise InvalidInput(f"classes {list(classes)!r} repeat a class")
        extra = _sort_classes([c for c in dictionary if c not in set(given)])
        order = given + extra
    else:
        order = _sort_classes(dictionary)
    pos = {c: i for i, c in enumerate(order)}
    remap = np.array([pos[c] for c in dictionary], dtype=np.int64)
    idx = np.concatenate(idx_parts)
    codes = remap[to_canon[idx]] if remap.size else idx
    n = len(y_true)
    present = sorted(set(remap.tolist()))
    return codes[:n], codes[n:], order, [order[i] for i in present]


# ================================================================================================
# Realised metrics
# ================================================================================================


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _auc(y: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float | None:
    """ROC AUC of a boolean target (Mann-Whitney with average ranks for ties), or None."""
    import numpy as np

    w = np.ones(y.size) if weight is None else weight
    order = np.argsort(score, kind="mergesort")
    s, yy, ww = score[order], y[order], w[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    neg = np.where(yy, 0.0, ww)
    pos = np.where(yy, ww, 0.0)
    neg_g = np.add.reduceat(neg, starts) if starts.size else np.zeros(0)
    pos_g = np.add.reduceat(pos, starts) if starts.size else np.zeros(0)
    w_pos, w_neg = float(pos_g.sum()), float(neg_g.sum())
    if w_pos == 0 or w_neg == 0:
        return None
    below = np.cumsum(neg_g) - neg_g
    return float(np.sum(pos_g * (below + 0.5 * neg_g)) / (w_pos * w_neg))


def _proba_matrix(proba: Any, n: int) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    if isinstance(proba, pa.ChunkedArray | pa.Array):
        arr = proba.combine_chunks() if isinstance(proba, pa.ChunkedArray) else proba
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            if arr.null_count:
                raise InvalidInput("proba has rows without probabilities")
            width = {len(v) for v in arr.slice(0, 1).to_pylist()}
            k = width.pop() if width else 0
            flat = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
            if flat.size != k * len(arr):
                raise InvalidInput("proba rows do not all have the same number of classes")
            p = flat.reshape(len(arr), k)
        else:
            p = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
    else:
        p = np.asarray(proba, dtype=np.float64)
    if p.ndim not in (1, 2) or p.shape[0] != n:
        raise InvalidInput(f"proba must have one row per prediction ({n}), got shape {p.shape}")
    return p


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 and ROC AUC (see the module notes for the rules).

    Returns ``{"task": "classification", "n", "accuracy", "precision", "recall", "f1",
    "roc_auc", "average": "binary"|"macro", "positive", "classes"}``; ``proba`` is
    ``(n, len(classes))`` in ``classes`` order (sorted classes by default) or, for two
    classes, the positive class's score.
    """
    import numpy as np

    yt, yp = _to_arrow(y_true), _to_arrow(y_pred)
    if len(yt) != len(yp):
        raise InvalidInput(f"y_true has {len(yt)} values and y_pred {len(yp)}")
    if yt.null_count or yp.null_count:
        raise InvalidInput("y_true and y_pred must not hold missing values")
    t, p, order, seen = _encode(yt, yp, classes)
    n = int(t.size)
    k_all = len(order)
    out: dict[str, Any] = {
        "task": "classification",
        "n": n,
        "accuracy": _ratio(float(np.sum(t == p)), n) if n else None,
        "precision": None,
        "recall": None,
        "f1": None,
        "roc_auc": None,
        "average": "binary",
        "positive": None,
        "classes": list(order),
    }
    if n == 0:
        return out
    binary = (len(classes) if classes is not None else len(seen)) <= 2 and k_all <= 2
    pos_name = _positive(positive, order, seen, classes) if binary else None
    if binary:
        out["positive"] = pos_name
        if pos_name is not None:
            pc_ = order.index(pos_name) if pos_name in order else -1
            tp = float(np.sum((p == pc_) & (t == pc_)))
            fp = float(np.sum((p == pc_) & (t != pc_)))
            fn = float(np.sum((p != pc_) & (t == pc_)))
            out["precision"] = _ratio(tp, tp + fp)
            out["recall"] = _ratio(tp, tp + fn)
            out["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    else:
        out["average"] = "macro"
        labels = np.array([order.index(c) for c in seen])
        tp = np.bincount(t[t == p], minlength=k_all)[labels].astype(float)
        pred_n = np.bincount(p, minlength=k_all)[labels].astype(float)
        true_n = np.bincount(t, minlength=k_all)[labels].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = np.where(pred_n > 0, tp / np.maximum(pred_n, 1), 0.0)
            rec = np.where(true_n > 0, tp / np.maximum(true_n, 1), 0.0)
            den = pred_n + true_n
            f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
        out["precision"] = float(prec.mean())
        out["recall"] = float(rec.mean())
        out["f1"] = float(f1.mean())
    if proba is not None:
        out["roc_auc"] = _roc_auc(t, _proba_matrix(proba, n), order, pos_name, binary, classes)
    return out


def _positive(
    positive: Any, order: list[str], seen: list[str], classes: Sequence[Any] | None
) -> str | None:
    if positive is not None:
        return str(_canonical_text(_to_arrow([positive])).to_pylist()[0])
    if classes is not None and len(order) == 2:
        return _sort_classes(order)[1]
    if len(seen) == 2:
        return seen[1]
    if len(seen) == 1:
        only = seen[0]
        if only in ("1", "true"):
            return only
        if only in ("0", "false"):
            return "1" if only == "0" else "true"
    return None


def _roc_auc(
    t: np.ndarray,
    p: np.ndarray,
    order: list[str],
    pos_name: str | None,
    binary: bool,
    classes: Sequence[Any] | None,
) -> float | None:
    import numpy as np

    if not np.all(np.isfinite(p)):
        raise InvalidInput("proba holds missing or infinite values")
    if binary:
        if pos_name is None:
            return None
        ci = order.index(pos_name) if pos_name in order else -1
        if p.ndim == 1:
            score = p
        else:
            if p.shape[1] != len(order) and not (p.shape[1] == 2 and len(order) < 2):
                raise InvalidInput(
                    f"proba has {p.shape[1]} columns for {len(order)} classes {order}; "
                    "pass classes= in the model's column order"
                )
            if ci < 0 or ci >= p.shape[1]:
                return None
            score = p[:, ci]
        return _auc(t == ci, score)
    if p.ndim != 2 or p.shape[1] != len(order):
        raise InvalidInput(
            f"proba has shape {p.shape} for {len(order)} classes {order}; pass classes= in "
            "the model's column order"
        )
    aucs = [a for c in range(len(order)) if (a := _auc(t == c, p[:, c])) is not None]
    present = np.unique(t)
    if present.size < 2 or not aucs:
        return None
    return float(np.mean(aucs))


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """``{"task": "regression", "n", "mae", "rmse", "r2", "bias"}`` (None when undefined)."""
    import numpy as np

    yt = _numbers(y_true, "y_true")
    yp = _numbers(y_pred, "y_pred")
    if yt.size != yp.size:
        raise InvalidInput(f"y_true has {yt.size} values and y_pred {yp.size}")
    ok = np.isfinite(yt) & np.isfinite(yp)
    yt, yp = yt[ok], yp[ok]
    n = int(yt.size)
    out: dict[str, Any] = {
        "task": "regression",
        "n": n,
        "mae": None,
        "rmse": None,
        "r2": None,
        "bias": None,
    }
    if n == 0:
        return out
    err = yp - yt
    out["mae"] = _finite(np.mean(np.abs(err)))
    out["rmse"] = _finite(np.sqrt(np.mean(err * err)))
    out["bias"] = _finite(np.mean(err))
    if n >= 2:
        ss_res = float(np.sum(err * err))
        ss_tot = float(np.sum((yt - yt.mean()) ** 2))
        # sklearn's force_finite: a constant target scores 1.0 if predicted exactly, else 0.0
        out["r2"] = (1.0 if ss_res == 0 else 0.0) if ss_tot == 0 else _finite(1 - ss_res / ss_tot)
    return out


def _numbers(values: Any, what: str) -> np.ndarray:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _to_arrow(values)
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            arr = pc.cast(arr, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InvalidInput(f"{what} holds text that is not a number") from None
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        if not pa.types.is_null(t):
            raise InvalidInput(f"{what} must hold numbers for a regression, not {t}")
    arr = pc.fill_null(pc.cast(arr, pa.float64(), safe=False), math.nan)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


# ================================================================================================
# By variant
# ================================================================================================


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        raise InvalidInput(
            f"the prediction table has no {name!r} column (columns: "
            f"{', '.join(table.column_names)})",
            column=name,
        )
    col = table.column(name)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _bools(table: pa.Table, name: str) -> np.ndarray:
    import numpy as np
    import pyarrow.compute as pc

    if name not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    col = pc.fill_null(_column(table, name).cast("bool"), False)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=bool)


def detect_task(predictions: pa.Array, labels: pa.Array, proba: pa.Array | None = None) -> str:
    """``"classification"`` or ``"regression"`` by the module's task rule."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if proba is not None and len(proba) and proba.null_count < len(proba):
        return "classification"
    t = predictions.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        if not pa.types.is_null(t):
            return "classification"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = pc.cast(predictions, pa.float64(), safe=False).drop_null()
        x = np.asarray(f.to_numpy(zero_copy_only=False), dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size and bool(np.any(x != np.floor(x))):
            return "regression"
    lt = labels.type
    label_numeric = pa.types.is_integer(lt) or pa.types.is_floating(lt) or pa.types.is_null(lt)
    if not label_numeric:
        return "classification"
    vals = pa.concat_arrays(
        [_canonical_text(predictions).drop_null(), _canonical_text(labels).drop_null()]
    )
    return "regression" if len(pc.unique(vals)) > REGRESSION_DISTINCT else "classification"


def variant_rows(
    joined: pa.Table, variant: str, *, shadow: bool = False, labeled: bool = True
) -> pa.Table:
    """The rows of one variant that its metrics use: status 200, not forced (live variants),
    shadow or live as asked, and (``labeled``) with a label."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ok = _ok_mask(joined)
    is_shadow = _bools(joined, "shadow")
    names = np.asarray(
        pc.fill_null(_column(joined, "variant").cast(pa.string()), "").to_numpy(
            zero_copy_only=False
        ),
        dtype=object,
    )
    keep = ok & (names == variant) & (is_shadow == shadow)
    if not shadow:
        keep &= ~_bools(joined, "forced")
    if labeled:
        keep &= np.asarray(pc.is_valid(_column(joined, "label")).to_numpy(zero_copy_only=False))
    return joined.filter(pa.array(keep))


def _ok_mask(table: pa.Table) -> np.ndarray:
    import numpy as np
    import pyarrow.compute as pc

    if "status" not in table.column_names:
        return np.ones(table.num_rows, dtype=bool)
    s = pc.fill_null(pc.equal(_column(table, "status"), 200), False)
    return np.asarray(s.to_numpy(zero_copy_only=False), dtype=bool)


def performance_by_variant(
    joined: pa.Table,
    *,
    task: str | None = None,
    positive: Any = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Realised performance per variant of a prediction log joined with its labels.

    Returns ``{"task", "rows", "labeled", "coverage", "variants": {key: {"variant",
    "shadow", "rows", "labeled", "coverage", "forced_rows", "errors", "metrics"}}}`` where
    ``metrics`` is :func:`classification_metrics` / :func:`regression_metrics` of the labeled
    rows, or None without labels. ``rows`` counts status-200 rows the metrics may use.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if task not in (None, "classification", "regression"):
        raise InvalidInput(f"task must be 'classification' or 'regression', not {task!r}")
    pred = _column(joined, "prediction")
    label = _column(joined, "label")
    proba = _column(joined, "proba") if "proba" in joined.column_names else None
    ok = _ok_mask(joined)
    is_shadow = _bools(joined, "shadow")
    forced = _bools(joined, "forced")
    has_label = np.asarray(pc.is_valid(label).to_numpy(zero_copy_only=False), dtype=bool)
    has_label &= np.asarray(pc.is_valid(pred).to_numpy(zero_copy_only=False), dtype=bool)
    variant_text = pc.fill_null(_column(joined, "variant").cast(pa.string()), "")
    enc = pc.dictionary_encode(variant_text)
    vcodes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    vnames = [str(v) for v in enc.dictionary.to_pylist()]
    if task is None:
        used = pa.array(ok)
        task = detect_task(
            pred.filter(used), label.filter(used), None if proba is None else proba.filter(used)
        )
    live_names = {vnames[c] for c in np.unique(vcodes[ok & ~is_shadow]).tolist()}
    entries: list[tuple[str, str, bool]] = []
    for code in np.unique(vcodes).tolist():
        name = vnames[code]
        for sh in (False, True):
            sel = (vcodes == code) & (is_shadow == sh)
            if sel.any():
                key = f"{name} (shadow)" if sh and name in live_names else name
                entries.append((key, name, sh))
    variants: dict[str, Any] = {}
    tot_rows = tot_labeled = 0
    for key, name, sh in sorted(entries, key=lambda e: (e[2], e[1])):
        base = (vcodes == vnames.index(name)) & (is_shadow == sh)
        errors = int(np.sum(base & ~ok))
        forced_rows = int(np.sum(base & ok & forced))
        use = base & ok if sh else base & ok & ~forced
        lab = use & has_label
        rows, labeled = int(use.sum()), int(lab.sum())
        tot_rows += rows
        tot_labeled += labeled
        metrics = None
        if labeled:
            mask = pa.array(lab)
            yt, yp = label.filter(mask), pred.filter(mask)
            if task == "regression":
                metrics = regression_metrics(yt, yp)
            else:
                metrics = _variant_classification(
                    yt, yp, None if proba is None else proba.filter(mask), classes, positive
                )
        variants[key] = {
            "variant": name,
            "shadow": sh,
            "rows": rows,
            "labeled": labeled,
            "coverage": _ratio(labeled, rows) if rows else None,
            "forced_rows": forced_rows,
            "errors": errors,
            "metrics": metrics,
        }
    return {
        "task": task,
        "rows": tot_rows,
        "labeled": tot_labeled,
        "coverage": _ratio(tot_labeled, tot_rows) if tot_rows else None,
        "variants": variants,
    }


def _variant_classification(
    yt: pa.Array, yp: pa.Array, proba: pa.Array | None, classes: Any, positive: Any
) -> dict[str, Any]:
    result = classification_metrics(yt, yp, classes=classes, positive=positive)
    p = _usable_proba(proba)
    if p is None:
        return result
    order = _proba_classes(yt, yp, p, classes)
    if order is None:
        return result
    with_proba = classification_metrics(yt, yp, p, classes=order, positive=positive)
    result["roc_auc"] = with_proba["roc_auc"]
    return result


def _usable_proba(proba: pa.Array | None) -> np.ndarray | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if proba is None or len(proba) == 0 or proba.null_count:
        return None
    if not (pa.types.is_list(proba.type) or pa.types.is_large_list(proba.type)):
        return None
    lengths = pc.list_value_length(proba)
    mm = pc.min_max(lengths).as_py()
    if mm["min"] != mm["max"] or not mm["min"]:
        return None
    try:
        p = _proba_matrix(proba, len(proba))
    except InvalidInput:
        return None
    import numpy as np

    return p if bool(np.all(np.isfinite(p))) else None


def _proba_classes(yt: pa.Array, yp: pa.Array, p: np.ndarray, classes: Any) -> list[str] | None:
    """The class of each proba column (see the module notes), or None if unknowable."""
    import numpy as np

    if classes is not None:
        order = [str(c) for c in _canonical_text(_to_arrow(list(classes))).to_pylist()]
        return order if len(order) == p.shape[1] else None
    _, pcodes, order, _ = _encode(yt, yp, None)
    arg = np.argmax(p, axis=1)
    k = p.shape[1]
    # Which prediction each column's argmax rows carry (one class per column, or unknowable).
    by_col: dict[int, set[int]] = {}
    width = max(len(order), 1)
    for pair in np.unique(arg * width + pcodes).tolist():
        by_col.setdefault(pair // width, set()).add(pair % width)
    if any(len(s) > 1 for s in by_col.values()):
        return None
    if len(order) == k and all(next(iter(s)) == c for c, s in by_col.items()):
        return order
    if len(by_col) == k:
        return [order[next(iter(by_col[c]))] for c in range(k)]
    return None


# ================================================================================================
# A/B verdicts
# ================================================================================================


def _side(data: Any, what: str) -> dict[str, Any]:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        cols = data.column_names
        if "label" not in cols or "prediction" not in cols:
            raise InvalidInput(f"variant {what}: the table needs 'label' and 'prediction' columns")
        out: dict[str, Any] = {
            "label": _column(data, "label"),
            "prediction": _column(data, "prediction"),
        }
        if "proba" in cols:
            out["proba"] = _column(data, "proba")
        import pyarrow.compute as pc

        mask = pc.and_(pc.is_valid(out["label"]), pc.is_valid(out["prediction"]))
        if pc.sum(pc.cast(mask, "int64")).as_py() != len(mask):
            out = {k: v.filter(mask) for k, v in out.items()}
        return out
    if isinstance(data, Mapping):
        if "label" not in data or "prediction" not in data:
            raise InvalidInput(f"variant {what}: give 'label' and 'prediction'")
        return dict(data)
    if isinstance(data, tuple | list) and len(data) in (2, 3):
        out = {"label": data[0], "prediction": data[1]}
        if len(data) == 3 and data[2] is not None:
            out["proba"] = data[2]
        return out
    raise InvalidInput(
        f"variant {what} must be a table with label/prediction columns, a mapping, or "
        "(labels, predictions[, proba])"
    )


def compare_variants(
    a: Any,
    b: Any,
    metric: str = "accuracy",
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    n_boot: int = 1000,
    seed: int = 0,
    positive: Any = None,
    classes: Sequence[Any] | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> dict[str, Any]:
    """Is variant B better than A on ``metric``? (See the module notes for the tests.)

    ``a``/``b``: labeled rows of each variant: a table with ``label``, ``prediction`` (and
    ``proba`` for ``roc_auc``) columns -- e.g. :func:`variant_rows` -- a mapping with those
    keys, or ``(labels, predictions[, proba])``.

    Returns ``{"metric", "method": "z_test"|"delong"|"bootstrap", "a": {"name", "n", "value"},
    "b": {...}, "difference" (B - A), "ci_low", "ci_high", "p_value", "alpha", "power",
    "significant", "better": name|None, "needed_per_variant", "more_needed_per_variant",
    "verdict"}``.
    """
    import numpy as np

    if metric not in HIGHER_IS_BETTER:
        raise InvalidInput(
            f"unknown metric {metric!r}; choose one of {', '.join(HIGHER_IS_BETTER)}"
        )
    if not (0 < alpha < 1) or not (0 < power < 1):
        raise InvalidInput("alpha and power must be between 0 and 1")
    if n_boot < 100:
        raise InvalidInput(f"n_boot must be at least 100, got {n_boot}")
    sa, sb = _side(a, names[0]), _side(b, names[1])
    regression = metric in ("mae", "rmse")
    if regression:
        prep = [_prep_regression(s) for s in (sa, sb)]
    else:
        prep = _prep_classification(sa, sb, classes, positive, need_proba=metric == "roc_auc")
    na, nb = prep[0]["n"], prep[1]["n"]
    z_a = _NORMAL.inv_cdf(1 - alpha / 2)
    z_b = _NORMAL.inv_cdf(power)
    result: dict[str, Any] = {
        "metric": metric,
        "method": "z_test" if metric in ("accuracy", "error_rate") else "bootstrap",
        "a": {"name": names[0], "n": na, "value": None},
        "b": {"name": names[1], "n": nb, "value": None},
        "difference": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "alpha": alpha,
        "power": power,
        "significant": False,
        "better": None,
        "needed_per_variant": None,
        "more_needed_per_variant": None,
        "verdict": "",
    }
    if na < 2 or nb < 2:
        result["verdict"] = (
            f"not enough labeled rows to compare ({names[0]}: {na}, {names[1]}: {nb})"
        )
        return result
    p_floor = 0.0  # the smallest p-value the method can show (bootstrap: 1 / resamples)
    if metric == "roc_auc" and prep[0]["binary"]:
        result["method"] = "delong"
    if result["method"] == "z_test":
        _z_test(result, prep[0]["correct"], prep[1]["correct"], metric, z_a, z_b, alpha)
    elif result["method"] == "delong":
        (va, var_a), (vb, var_b) = _delong(prep[0]), _delong(prep[1])
        result["a"]["value"], result["b"]["value"] = va, vb
        if va is None or vb is None:
            result["verdict"] = "roc_auc is undefined for one variant (its labels are one class)"
            return result
        d = vb - va
        se = math.sqrt(var_a + var_b)
        p = math.erfc(abs(d) / se / math.sqrt(2)) if se > 0 else (1.0 if d == 0 else 0.0)
        result.update(
            difference=d,
            ci_low=d - z_a * se,
            ci_high=d + z_a * se,
            p_value=p,
            significant=bool(p < alpha),
        )
        result["needed_per_variant"] = _needed(min(na, nb), se, d, z_a, z_b)
    else:
        rng = np.random.default_rng(seed)
        va, boot_a = _boot_metric(prep[0], metric, n_boot, rng)
        vb, boot_b = _boot_metric(prep[1], metric, n_boot, rng)
        result["a"]["value"], result["b"]["value"] = _finite(va), _finite(vb)
        if va is None or vb is None or boot_a is None or boot_b is None:
            result["verdict"] = f"{metric} is undefined for one variant (e.g. a single class)"
            return result
        diff = boot_b - boot_a
        diff = diff[np.isfinite(diff)]
        d = vb - va
        lo, hi = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
        # Two-sided tail share, floored at 1 / resamples (the resolution of the bootstrap).
        p_floor = 1 / diff.size
        p = max(2 * min(float(np.mean(diff <= 0)), float(np.mean(diff >= 0))), p_floor)
        se = float(np.std(diff, ddof=1))
        result.update(
            difference=_finite(d),
            ci_low=_finite(lo),
            ci_high=_finite(hi),
            p_value=min(1.0, p),
            significant=bool(lo > 0 or hi < 0),
        )
        result["needed_per_variant"] = _needed(min(na, nb), se, d, z_a, z_b)
    _verdict(result, metric, names, p_floor)
    return result


def _needed(n: int, se: float, d: float, z_a: float, z_b: float) -> int | None:
    """Rows per variant for ``power`` at the observed difference ``d``, scaling the current
    ``n`` by the standard error ``se`` (None when there is no difference to detect)."""
    if d == 0 or not se > 0:
        return None
    return math.ceil(n * ((z_a + z_b) * se / abs(d)) ** 2)


def _z_test(
    result: dict[str, Any],
    ca: np.ndarray,
    cb: np.ndarray,
    metric: str,
    z_a: float,
    z_b: float,
    alpha: float,
) -> None:
    na, nb = ca.size, cb.size
    xa, xb = float(ca.sum()), float(cb.sum())
    if metric == "error_rate":
        xa, xb = na - xa, nb - xb
    pa_, pb_ = xa / na, xb / nb
    pool = (xa + xb) / (na + nb)
    se0 = math.sqrt(pool * (1 - pool) * (1 / na + 1 / nb))
    d = pb_ - pa_
    if se0 > 0:
        z = d / se0
        p = math.erfc(abs(z) / math.sqrt(2))
    else:
        p = 1.0  # both variants all right (or all wrong): no evidence of a difference
    se1 = math.sqrt(pa_ * (1 - pa_) / na + pb_ * (1 - pb_) / nb)
    result["a"]["value"], result["b"]["value"] = pa_, pb_
    result.update(
        difference=d,
        ci_low=d - z_a * se1,
        ci_high=d + z_a * se1,
        p_value=p,
        significant=bool(p < alpha),
    )
    if d != 0:
        pbar = (pa_ + pb_) / 2
        num = z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(
            pa_ * (1 - pa_) + pb_ * (1 - pb_)
        )
        result["needed_per_variant"] = math.ceil(num * num / (d * d))


def _verdict(
    result: dict[str, Any], metric: str, names: tuple[str, str], p_floor: float = 0.0
) -> None:
    d = result["difference"]
    p = result["p_value"]
    needed = result["needed_per_variant"]
    n_now = min(result["a"]["n"], result["b"]["n"])
    if needed is not None:
        result["more_needed_per_variant"] = max(0, needed - n_now)
    if result["significant"] and d is not None:
        b_better = (d > 0) == HIGHER_IS_BETTER[metric]
        winner, loser = (names[1], names[0]) if b_better else (names[0], names[1])
        result["better"] = winner
        bound = p <= p_floor
        shown = f"p<={p:.3g}" if bound else f"p={p:.3g}"
        result["verdict"] = f"{winner} better than {loser} on {metric} ({shown})"
        return
    if d is None or d == 0 or needed is None:
        result["verdict"] = (
            f"no difference in {metric} observed (p={p:.3g})"
            if p is not None
            else (f"no difference in {metric} observed")
        )
        return
    more = result["more_needed_per_variant"]
    if more:
        result["verdict"] = (
            f"no significant difference in {metric} yet (p={p:.3g}); ~{more} more labeled rows "
            "per variant needed"
        )
    else:
        result["verdict"] = (
            f"no significant difference in {metric} (p={p:.3g}) with enough rows to see the "
            "observed one: likely no real difference"
        )


def _prep_regression(side: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np

    yt = _numbers(side["label"], "label")
    yp = _numbers(side["prediction"], "prediction")
    if yt.size != yp.size:
        raise InvalidInput("labels and predictions differ in length")
    ok = np.isfinite(yt) & np.isfinite(yp)
    err = yp[ok] - yt[ok]
    return {"n": int(err.size), "err": err}


def _prep_classification(
    sa: Mapping[str, Any],
    sb: Mapping[str, Any],
    classes: Sequence[Any] | None,
    positive: Any,
    need_proba: bool,
) -> list[dict[str, Any]]:
    """Codes of both variants over one class list (so both use the same positive class)."""
    import numpy as np
    import pyarrow as pa

    yts = [_to_arrow(s["label"]) for s in (sa, sb)]
    yps = [_to_arrow(s["prediction"]) for s in (sa, sb)]
    for yt, yp in zip(yts, yps, strict=True):
        if len(yt) != len(yp):
            raise InvalidInput("labels and predictions differ in length")
    all_t = pa.concat_arrays([_canonical_text(x) for x in yts])
    all_p = pa.concat_arrays([_canonical_text(x) for x in yps])
    t, p, order, seen = _encode(all_t, all_p, classes)
    binary = (len(classes) if classes is not None else len(seen)) <= 2 and len(order) <= 2
    pos = _positive(positive, order, seen, classes) if binary else None
    ci = order.index(pos) if pos is not None and pos in order else -1
    n0 = len(yts[0])
    out = []
    for i, s in enumerate((sa, sb)):
        sl = slice(0, n0) if i == 0 else slice(n0, None)
        item: dict[str, Any] = {
            "n": int(t[sl].size),
            "t": t[sl],
            "p": p[sl],
            "k": len(order),
            "binary": binary,
            "pos": ci,
            "correct": (t[sl] == p[sl]),
            "labels": np.array([order.index(c) for c in seen]),
        }
        if need_proba:
            proba = s.get("proba")
            if proba is None:
                raise InvalidInput("roc_auc needs the probabilities ('proba') of each variant")
            pm = _proba_matrix(proba, item["n"])
            if binary:
                if pm.ndim == 2:
                    if ci < 0 or ci >= pm.shape[1]:
                        raise InvalidInput("the positive class has no proba column")
                    pm = pm[:, ci]
            elif pm.ndim != 2 or pm.shape[1] != len(order):
                raise InvalidInput(
                    f"proba needs one column per class {order}; pass classes= in column order"
                )
            item["proba"] = pm
        out.append(item)
    return out


def _weights(n: int, n_boot: int, rng: np.random.Generator) -> Any:
    """Bootstrap resample counts, ``n_boot x n``, in chunks of bounded size."""
    import numpy as np

    step = max(1, _BOOT_CELLS // max(n, 1))
    done = 0
    while done < n_boot:
        b = min(step, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def _boot_metric(
    side: dict[str, Any], metric: str, n_boot: int, rng: np.random.Generator
) -> tuple[float | None, np.ndarray | None]:
    """(metric on the data, metric on each of ``n_boot`` resamples of the rows).

    Count metrics resample the confusion matrix (a multinomial draw over its cells is exactly
    a resample of the rows, in O(n_boot k^2)); mae/rmse resample the rows' errors; the
    multiclass roc_auc resamples rows as multinomial weights."""
    import numpy as np

    n = side["n"]
    if metric in ("mae", "rmse"):
        e = np.abs(side["err"]) if metric == "mae" else side["err"] ** 2
        point = float(e.mean())
        step = max(1, _BOOT_CELLS // max(n, 1))
        parts = []
        for done in range(0, n_boot, step):
            b = min(step, n_boot - done)
            parts.append(e[rng.integers(0, n, size=(b, n))].mean(axis=1))
        boot = np.concatenate(parts)
        if metric == "rmse":
            return math.sqrt(point), np.sqrt(boot)
        return point, boot
    if metric in ("precision", "recall", "f1"):
        k = side["k"]
        cm = np.bincount(side["t"] * k + side["p"], minlength=k * k).astype(np.float64)
        point = _confusion_metric(cm[None, :], side, metric)[0]
        draws = rng.multinomial(n, cm / cm.sum(), size=n_boot).astype(np.float64)
        return float(point), _confusion_metric(draws, side, metric)
    ones = np.ones((1, n))
    point = _weighted_metric(side, metric, ones)[0]
    if not math.isfinite(point):
        return None, None
    chunks = [_weighted_metric(side, metric, w) for w in _weights(n, n_boot, rng)]
    return float(point), np.concatenate(chunks)


def _confusion_metric(cms: np.ndarray, side: dict[str, Any], metric: str) -> np.ndarray:
    """precision / recall / f1 of each flattened confusion matrix (rows: true, cols: pred)."""
    import numpy as np

    k = side["k"]
    m = cms.reshape(-1, k, k)
    tp_all = np.diagonal(m, axis1=1, axis2=2)
    pred_n = m.sum(axis=1)
    true_n = m.sum(axis=2)
    if side["binary"]:
        ci = side["pos"]
        if ci < 0:
            return np.zeros(m.shape[0])
        cols = np.array([ci])
    else:
        cols = side["labels"]
    tp, pn, tn = tp_all[:, cols], pred_n[:, cols], true_n[:, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "precision":
            v = np.where(pn > 0, tp / pn, 0.0)
        elif metric == "recall":
            v = np.where(tn > 0, tp / tn, 0.0)
        else:
            v = np.where(pn + tn > 0, 2 * tp / (pn + tn), 0.0)
    return v.mean(axis=1)


def _midrank(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    import numpy as np

    order = np.argsort(x, kind="mergesort")
    s = x[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    ends = np.concatenate((starts[1:], [s.size]))
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _delong(side: dict[str, Any]) -> tuple[float | None, float]:
    """Binary ROC AUC and its DeLong variance (structural components, midranks)."""
    import numpy as np

    y = side["t"] == side["pos"]
    score = side["proba"]
    pos, neg = score[y], score[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return None, 0.0
    tz = _midrank(np.concatenate([pos, neg]))
    tx, ty = _midrank(pos), _midrank(neg)
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    var = (np.var(v01, ddof=1) / m if m > 1 else 0.0) + (np.var(v10, ddof=1) / n if n > 1 else 0.0)
    return float(auc), float(var)


def _weighted_metric(side: dict[str, Any], metric: str, w: np.ndarray) -> np.ndarray:
    """The metric under row weights ``w`` (one resample per row of ``w``); NaN if undefined."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        if metric in ("mae", "rmse"):
            e = side["err"]
            tot = w.sum(axis=1)
            if metric == "mae":
                return (w @ np.abs(e)) / tot
            return np.sqrt((w @ (e * e)) / tot)
        t, p = side["t"], side["p"]
        if metric == "roc_auc":
            return _weighted_auc(side, w)
        if side["binary"]:
            ci = side["pos"]
            tp = w @ ((p == ci) & (t == ci)).astype(float)
            fp = w @ ((p == ci) & (t != ci)).astype(float)
            fn = w @ ((p != ci) & (t == ci)).astype(float)
            if metric == "precision":
                return np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            if metric == "recall":
                return np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        vals = []
        for c in side["labels"].tolist():
            tp = w @ ((p == c) & (t == c)).astype(float)
            pn = w @ (p == c).astype(float)
            tn = w @ (t == c).astype(float)
            if metric == "precision":
                vals.append(np.where(pn > 0, tp / pn, 0.0))
            elif metric == "recall":
                vals.append(np.where(tn > 0, tp / tn, 0.0))
            else:
                vals.append(np.where(pn + tn > 0, 2 * tp / (pn + tn), 0.0))
        return np.mean(vals, axis=0)


def _weighted_auc(side: dict[str, Any], w: np.ndarray) -> np.ndarray:
    """ROC AUC under each row of weights (binary, or one-vs-rest macro), NaN if undefined."""
    import numpy as np

    t, proba = side["t"], side["proba"]
    if side["binary"]:
        targets = [(t == side["pos"], proba)]
    else:
        targets = [(t == c, proba[:, c]) for c in range(side["k"])]
    per_class = []
    for y, score in targets:
        if y.all() or not y.any():
            continue
        order = np.argsort(score, kind="mergesort")
        s, yy, ww = score[order], y[order], w[:, order]
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        neg_g = np.add.reduceat(np.where(yy, 0.0, ww), starts, axis=1)
        pos_g = np.add.reduceat(np.where(yy, ww, 0.0), starts, axis=1)
        below = np.cumsum(neg_g, axis=1) - neg_g
        num = np.sum(pos_g * (below + 0.5 * neg_g), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class.append(num / (pos_g.sum(axis=1) * neg_g.sum(axis=1)))
    if not per_class:
        return np.full(w.shape[0], np.nan)
    return np.mean(per_class, axis=0)


# ================================================================================================
# Estimated performance (CBPE)
# ================================================================================================


def estimate_performance(
    proba: Any,
    classes: Sequence[Any],
    *,
    positive: Any = None,
    calibration: tuple[Any, Any] | None = None,
    y_pred: Any = None,
) -> dict[str, Any]:
    """Expected accuracy, precision, recall, F1 and ROC AUC from probabilities alone.

    ``proba``: ``(n, k)`` in ``classes`` order (a list<float64> column works);
    ``calibration``: ``(y_true, proba)`` of labeled rows to calibrate with first.
    Returns ``{"estimated": True, "method": "cbpe", "calibrated", "n", "accuracy",
    "precision", "recall", "f1", "roc_auc", "average", "positive", "classes"}``.
    """
    import numpy as np

    order = [str(c) for c in _canonical_text(_to_arrow(list(classes))).to_pylist()]
    k = len(order)
    if k < 2 or len(set(order)) != k:
        raise InvalidInput(f"classes must name at least two distinct classes, got {classes!r}")
    raw = _proba_matrix(proba, _length(proba))
    if raw.ndim != 2 or raw.shape[1] != k:
        raise InvalidInput(f"proba must have {k} columns (one per class), got shape {raw.shape}")
    if not np.all(np.isfinite(raw)):
        raise InvalidInput("proba holds missing or infinite values")
    n = raw.shape[0]
    if y_pred is None:
        pred = np.argmax(raw, axis=1)
    else:
        pred = _class_index(_to_arrow(y_pred), order, "y_pred")
        if pred.size != n:
            raise InvalidInput("y_pred and proba differ in length")
    binary = k == 2
    pos_name = None
    ci = 1
    if binary:
        if positive is None:
            pos_name = _sort_classes(order)[1]
        else:
            pos_name = str(_canonical_text(_to_arrow([positive])).to_pylist()[0])
            if pos_name not in order:
                raise InvalidInput(f"positive class {positive!r} is not one of {order}")
        ci = order.index(pos_name)
    cal = raw
    calibrated = False
    if calibration is not None:
        cal = _calibrate(raw, calibration, order, ci if binary else None)
        calibrated = True
    out: dict[str, Any] = {
        "estimated": True,
        "method": "cbpe",
        "calibrated": calibrated,
        "n": n,
        "accuracy": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "roc_auc": None,
        "average": "binary" if binary else "macro",
        "positive": pos_name,
        "classes": order,
    }
    if n == 0:
        return out
    out["accuracy"] = _finite(np.mean(cal[np.arange(n), pred]))
    per = []
    for c in [ci] if binary else range(k):
        p_c = cal[:, c]
        is_pred = pred == c
        tp = float(p_c[is_pred].sum())
        fp = float((1 - p_c[is_pred]).sum())
        fn = float(p_c[~is_pred].sum())
        per.append(
            (
                _ratio(tp, tp + fp),
                _ratio(tp, tp + fn),
                _ratio(2 * tp, 2 * tp + fp + fn),
                _expected_auc(raw[:, c], p_c),
            )
        )
    arr = np.array([[np.nan if v is None else v for v in row] for row in per], dtype=float)
    out["precision"] = _finite(arr[:, 0].mean())
    out["recall"] = _finite(arr[:, 1].mean())
    out["f1"] = _finite(arr[:, 2].mean())
    aucs = arr[:, 3][np.isfinite(arr[:, 3])]
    out["roc_auc"] = _finite(aucs.mean()) if aucs.size else None
    return out


def _class_index(values: pa.Array, order: list[str], what: str) -> np.ndarray:
    """Position of each value in ``order`` (canonical text); unknown or missing: an error."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _canonical_text(values)
    if text.null_count:
        raise InvalidInput(f"{what} must not hold missing values")
    idx = pc.index_in(text, value_set=pa.array(order, pa.string()))
    if idx.null_count:
        unknown = pc.unique(pc.filter(text, pc.is_null(idx))).to_pylist()[:5]
        raise InvalidInput(f"{what} hold classes {unknown} not among classes {order}")
    return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)


def _length(proba: Any) -> int:
    try:
        return len(proba)
    except TypeError:
        raise InvalidInput("proba must be a 2-D array of probabilities") from None


def _expected_auc(score: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the expected ROC curve: rank by ``score``, positives weighted by ``p``."""
    import numpy as np

    order = np.argsort(-score, kind="mergesort")
    s, q = score[order], p[order]
    ends = np.flatnonzero(np.concatenate((s[1:] != s[:-1], [True])))
    tp = np.cumsum(q)[ends]
    fp = np.cumsum(1 - q)[ends]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return None
    tpr = np.concatenate(([0.0], tp / tp[-1]))
    fpr = np.concatenate(([0.0], fp / fp[-1]))
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _calibrate(
    raw: np.ndarray, calibration: tuple[Any, Any], order: list[str], ci: int | None
) -> np.ndarray:
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    if not isinstance(calibration, tuple | list) or len(calibration) != 2:
        raise InvalidInput("calibration must be (y_true, proba) of labeled rows")
    y_idx = _class_index(_to_arrow(calibration[0]), order, "calibration labels")
    p_cal = _proba_matrix(calibration[1], int(y_idx.size))
    if p_cal.ndim != 2 or p_cal.shape[1] != len(order):
        raise InvalidInput(f"calibration proba must have {len(order)} columns")
    if y_idx.size < 2:
        raise InvalidInput("calibration needs at least 2 labeled rows")

    def fit(c: int) -> np.ndarray:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(p_cal[:, c], (y_idx == c).astype(float))
        return np.asarray(iso.predict(raw[:, c]), dtype=np.float64)

    if ci is not None:
        pos = fit(ci)
        out = np.empty_like(raw)
        out[:, ci] = pos
        out[:, 1 - ci] = 1 - pos
        return out
    cols = np.stack([fit(c) for c in range(len(order))], axis=1)
    tot = cols.sum(axis=1, keepdims=True)
    uniform = np.full_like(cols, 1.0 / len(order))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tot > 0, cols / np.where(tot > 0, tot, 1.0), uniform)
