"""The validation gate: requirement expressions, metrics on holdout data, and checks.

Requirements are ``<metric> <op> <threshold>``::

    roc_auc>=0.80              absolute
    roc_auc>=champion-0.01     relative to the champion's value on the same data
    rmse<=champion*1.05        (also champion, champion+x)

Operators: ``>=``, ``>``, ``<=``, ``<``, ``==``. Metrics: classification -- accuracy, precision,
recall, f1, roc_auc, log_loss; regression -- mae, rmse, r2. Precision, recall and F1 use the
positive class (the larger of two labels) for binary problems and the macro average beyond.
roc_auc and log_loss need ``predict_proba``; without it they are skipped with a note, and a
requirement on them then fails.

A relative check without a champion (nothing selected yet) passes with ``champion: None`` and a
note, so the first model of a name can be gated on absolute thresholds alone.

Pure computation: scikit-learn and NumPy are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import DockyardError, InvalidInput

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
#: Metrics where a smaller value is better (for reading verdicts; the op decides the check).
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
OPS = (">=", "<=", "==", ">", "<")

_REQ = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*([^<>=\s].*?)\s*$")
_REL = re.compile(r"^champion\s*(?:([+\-*])\s*(.+))?$")
_FORMS = (
    "'<metric><op><number>' or '<metric><op>champion[+|-|*<number>]', "
    "e.g. roc_auc>=0.80 or roc_auc>=champion-0.01"
)


@dataclass(frozen=True)
class Requirement:
    """One parsed requirement; ``relative`` is None for an absolute threshold, else
    (operator, operand) applied to the champion's value: ("+", 0.0) means "champion"."""

    text: str
    metric: str
    op: str
    threshold: float | None
    relative: tuple[str, float] | None = None

    def threshold_for(self, champion: float | None) -> float | None:
        """The absolute threshold: fixed, or computed from the champion's value."""
        if self.relative is None:
            return self.threshold
        if champion is None:
            return None
        how, x = self.relative
        if how == "+":
            return champion + x
        if how == "-":
            return champion - x
        return champion * x


def _number(text: str, requirement: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(
            f"requirement {requirement!r}: {text!r} is not a number; write {_FORMS}"
        ) from None
    if not math.isfinite(value):
        raise InvalidInput(f"requirement {requirement!r}: the threshold must be finite")
    return value


def parse_requirement(text: Any) -> Requirement:
    """Parse ``roc_auc>=0.80`` or ``roc_auc>=champion-0.01`` (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"a requirement must be a non-empty string like {_FORMS}")
    if len(text) > 200:
        raise InvalidInput("a requirement is at most 200 characters")
    m = _REQ.match(text)
    if m is None:
        raise InvalidInput(f"requirement {text!r} is not understood; write {_FORMS}")
    metric, op, rhs = m.group(1).lower(), m.group(2), m.group(3)
    if metric not in METRICS:
        raise InvalidInput(
            f"requirement {text!r} names an unknown metric {metric!r}; known metrics: "
            f"{', '.join(CLASSIFICATION_METRICS)} (classification), "
            f"{', '.join(REGRESSION_METRICS)} (regression)"
        )
    clean = metric + op + re.sub(r"\s+", "", rhs)
    rel = _REL.match(rhs.lower())
    if rel is not None:
        how, operand = rel.group(1), rel.group(2)
        if how is None:
            return Requirement(clean, metric, op, None, ("+", 0.0))
        return Requirement(clean, metric, op, None, (how, _number(operand, text)))
    return Requirement(clean, metric, op, _number(rhs, text))


def infer_task(metrics: Iterable[str]) -> str | None:
    """classification or regression from the metrics named, None if none; mixed is an error."""
    names = set(metrics)
    if not names:
        return None
    if names <= set(CLASSIFICATION_METRICS):
        return "classification"
    if names <= set(REGRESSION_METRICS):
        return "regression"
    raise InvalidInput(f"requirements mix classification and regression metrics: {sorted(names)}")


def compare(value: float, op: str, threshold: float) -> bool:
    if math.isnan(value) or math.isnan(threshold):
        return False
    if op == ">=":
        return value >= threshold
    if op == ">":
        return value > threshold
    if op == "<=":
        return value <= threshold
    if op == "<":
        return value < threshold
    if op == "==":
        return value == threshold
    raise InvalidInput(f"unknown operator {op!r}; use one of {', '.join(OPS)}")


def _classes(model: Any) -> list[Any] | None:
    """The class labels in the order of predict_proba's columns, when the model says."""
    manifest = getattr(model, "manifest", None)
    signature = (
        manifest.get("signature")
        if isinstance(manifest, Mapping)
        else getattr(manifest, "signature", None)
    )
    if isinstance(signature, Mapping) and signature.get("classes"):
        return list(signature["classes"])
    for obj in (getattr(model, "raw", None), model):
        classes = getattr(obj, "classes_", None)
        if classes is not None:
            return list(classes)
    return None


def _proba(model: Any, x: Any, notes: dict[str, str]) -> Any:
    import numpy as np

    fn = getattr(model, "predict_proba", None)
    if not callable(fn):
        for m in ("roc_auc", "log_loss"):
            notes[m] = "skipped: the model has no predict_proba"
        return None
    try:
        return np.asarray(fn(x), dtype=float)
    except (AttributeError, NotImplementedError, DockyardError, TypeError) as exc:
        for m in ("roc_auc", "log_loss"):
            notes[m] = f"skipped: predict_proba failed ({type(exc).__name__}: {exc})"
        return None


def evaluate(
    model: Any, x: Any, y: Any, task: str, *, notes: dict[str, str] | None = None
) -> dict[str, float]:
    """Every metric of ``task`` for ``model`` (anything with ``predict`` and, optionally,
    ``predict_proba``) on features ``x`` and labels ``y``. Metrics that cannot be computed are
    left out, with the reason in ``notes`` when a dict is given."""
    import numpy as np
    from sklearn import metrics as skm

    notes = {} if notes is None else notes
    y_true = np.asarray(y)
    y_pred = np.asarray(model.predict(x))
    if y_pred.ndim > 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred.reshape(-1)
    if len(y_pred) != len(y_true):
        raise InvalidInput(f"the model returned {len(y_pred)} predictions for {len(y_true)} rows")
    out: dict[str, float] = {}
    if task == "regression":
        y_true_f, y_pred_f = y_true.astype(float), y_pred.astype(float)
        out["mae"] = float(skm.mean_absolute_error(y_true_f, y_pred_f))
        out["rmse"] = float(math.sqrt(skm.mean_squared_error(y_true_f, y_pred_f)))
        if len(y_true_f) >= 2:
            out["r2"] = float(skm.r2_score(y_true_f, y_pred_f))
        else:
            notes["r2"] = "skipped: r2 needs at least two rows"
        return out
    if task != "classification":
        raise InvalidInput(f"task must be classification or regression, got {task!r}")
    classes = _classes(model)
    if classes is None:
        classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)
    out["accuracy"] = float(skm.accuracy_score(y_true, y_pred))
    if len(classes) <= 2:
        avg: dict[str, Any] = {"average": "binary", "pos_label": classes[-1]}
    else:
        avg = {"average": "macro", "labels": classes}
    for metric, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        out[metric] = float(fn(y_true, y_pred, zero_division=0, **avg))
    proba = _proba(model, x, notes)
    if proba is None:
        return out
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        msg = f"skipped: predict_proba gave shape {proba.shape} for {len(classes)} classes"
        notes["roc_auc"] = notes["log_loss"] = msg
        return out
    try:
        if len(classes) == 2:
            positive = (y_true == classes[1]).astype(int)
            out["roc_auc"] = float(skm.roc_auc_score(positive, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
            )
    except ValueError as exc:
        notes["roc_auc"] = f"skipped: {exc}"
    try:
        out["log_loss"] = float(skm.log_loss(y_true, proba, labels=classes))
    except ValueError as exc:
        notes["log_loss"] = f"skipped: {exc}"
    return out


def check(
    req: Requirement,
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    notes: Mapping[str, str] | None = None,
    against: Any = "champion",
) -> dict[str, Any]:
    """One check's record: requirement, metric, op, threshold, candidate, champion, passed,
    note."""
    notes = notes or {}
    value = candidate.get(req.metric)
    champ = None if champion is None else champion.get(req.metric)
    row: dict[str, Any] = {
        "requirement": req.text,
        "metric": req.metric,
        "op": req.op,
        "threshold": None,
        "candidate": _json_float(value),
        "champion": _json_float(champ),
        "passed": False,
        "note": None,
    }
    if value is None:
        row["note"] = notes.get(req.metric) or f"{req.metric} was not computed"
        return row
    if req.relative is not None:
        if champion is None:
            row["passed"] = True
            row["note"] = f"no champion: {against!r} selects no version yet; check skipped"
            return row
        if champ is None:
            row["note"] = f"{req.metric} was not computed for the champion"
            return row
    threshold = req.threshold_for(champ)
    assert threshold is not None
    row["threshold"] = _json_float(threshold)
    row["passed"] = compare(value, req.op, threshold)
    return row


def _json_float(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
