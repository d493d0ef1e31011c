"""Performance metrics against scikit-learn, A/B verdicts against the textbook formulas,
labels joined to the prediction log, and confidence-based estimation on synthetic data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dockyard.core.errors import InvalidInput
from dockyard.monitoring.performance import (
    classification_metrics,
    compare_variants,
    detect_task,
    estimate_performance,
    performance_by_variant,
    regression_metrics,
    variant_rows,
)
from dockyard.serving.labels import LabelStore, join_labels

skm = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")


def _json(d: dict) -> dict:
    return json.loads(json.dumps(d, allow_nan=False))


# --------------------------------------------------------------------------- realised metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1).round(2)  # ties on purpose
    pred = (p1 > 0.5).astype(int)
    proba = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, pred, proba)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert (m["n"], m["average"], m["positive"], m["classes"]) == (n, "binary", "1", ["0", "1"])
    # A 1-D score is the positive class's column.
    assert classification_metrics(y, pred, p1)["roc_auc"] == m["roc_auc"]
    _json(m)


def test_binary_string_labels_and_positive() -> None:
    y = np.array(["no", "yes", "yes", "no", "yes", "no", "no"])
    pred = np.array(["no", "yes", "no", "no", "yes", "yes", "no"])
    score_yes = np.array([0.1, 0.9, 0.4, 0.2, 0.8, 0.6, 0.3])
    m = classification_metrics(y, pred, np.stack([1 - score_yes, score_yes], 1))
    assert m["positive"] == "yes"
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="yes"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", score_yes))
    m = classification_metrics(y, pred, positive="no")
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="no"))
    # Model column order given by classes: ["yes", "no"]; the positive is still "yes".
    m2 = classification_metrics(
        y, pred, np.stack([score_yes, 1 - score_yes], 1), classes=["yes", "no"]
    )
    assert m2["positive"] == "yes"
    assert m2["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", score_yes))


def test_multiclass_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    n, k = 600, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = proba.argmax(1)
    m = classification_metrics(y, pred, proba)
    assert m["average"] == "macro"
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    # A class never predicted: zero division gives 0, as sklearn's default does.
    pred2 = np.where(pred == 3, 0, pred)
    m2 = classification_metrics(y, pred2)
    assert m2["precision"] == pytest.approx(
        skm.precision_score(y, pred2, average="macro", zero_division=0)
    )


def test_labels_compare_as_canonical_text() -> None:
    labels = pa.array(["1", "0", "1", "1"])  # ingested as text
    preds = pa.array([1.0, 0.0, 0.0, 1.0])  # a float-typed prediction
    m = classification_metrics(labels, preds)
    assert m["accuracy"] == 0.75 and m["classes"] == ["0", "1"] and m["positive"] == "1"
    m = classification_metrics([True, False, True], ["true", "false", "false"])
    assert m["accuracy"] == pytest.approx(2 / 3) and m["positive"] == "true"
    # Numbers sort numerically: 2 < 10 (sklearn's order), so 10 is the positive class.
    assert classification_metrics([2, 10, 10], [2, 10, 2])["positive"] == "10"


def test_single_class_does_not_crash() -> None:
    y = [0, 0, 0]
    pred = [0, 1, 0]
    m = classification_metrics(y, pred, [[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]])
    assert m["roc_auc"] is None
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
    m = classification_metrics([0, 0], [0, 0], [0.1, 0.2])
    assert m["roc_auc"] is None and m["accuracy"] == 1.0
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)  # sklearn's values
    m = classification_metrics(["cat"], ["cat"])
    assert m["precision"] is None and m["accuracy"] == 1.0
    m = classification_metrics([], [])
    assert m["n"] == 0 and m["accuracy"] is None
    _json(m)


def test_classification_input_errors() -> None:
    with pytest.raises(InvalidInput):
        classification_metrics([1, 0], [1])
    with pytest.raises(InvalidInput):
        classification_metrics([1, None], [1, 0])
    with pytest.raises(InvalidInput, match="classes="):
        classification_metrics([0, 1, 2], [0, 1, 2], [[0.5, 0.5]] * 3)


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=300)
    pred = y + rng.normal(scale=0.3, size=300)
    m = regression_metrics(y, pred)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert m["bias"] == pytest.approx(np.mean(pred - y))
    assert regression_metrics([1.0, 1.0], [1.0, 2.0])["r2"] == skm.r2_score([1, 1], [1, 2])
    m = regression_metrics([1.0, None, 3.0], [1.5, 2.0, math.nan])  # incomplete rows left out
    assert m["n"] == 1 and m["mae"] == 0.5 and m["r2"] is None
    assert regression_metrics(["1.5", "2"], [1, 2])["mae"] == 0.25
    with pytest.raises(InvalidInput):
        regression_metrics(["a"], [1])
    _json(regression_metrics([], []))


# --------------------------------------------------------------------------- by variant


def _log(rows: list[dict]) -> pa.Table:
    """A prediction log with the fixed columns the monitors read."""
    base = {
        "request_id": "",
        "row": 0,
        "variant": "A",
        "shadow": False,
        "forced": False,
        "time": 0,
        "status": 200,
        "prediction": None,
        "proba": None,
    }
    cols = {k: [r.get(k, v) for r in rows] for k, v in base.items()}
    return pa.table(
        {
            "request_id": pa.array(cols["request_id"], pa.string()),
            "row": pa.array(cols["row"], pa.int32()),
            "variant": pa.array(cols["variant"], pa.string()),
            "shadow": pa.array(cols["shadow"], pa.bool_()),
            "forced": pa.array(cols["forced"], pa.bool_()),
            "time": pa.array(cols["time"], pa.int64()),
            "status": pa.array(cols["status"], pa.int32()),
            "prediction": pa.array(cols["prediction"], pa.int64()),
            "proba": pa.array(cols["proba"], pa.list_(pa.float64())),
        }
    )


def _labels(items: list[tuple[str, int, object]]) -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([i[0] for i in items], pa.string()),
            "row": pa.array([i[1] for i in items], pa.int32()),
            "label": pa.array([i[2] for i in items]),
        }
    )


def test_performance_by_variant_with_late_missing_and_shadow_labels() -> None:
    rows = [
        # A: request a1 has 2 rows, a2 one; a3 failed; a4 was forced onto A.
        {"request_id": "a1", "row": 0, "prediction": 1, "proba": [0.2, 0.8]},
        {"request_id": "a1", "row": 1, "prediction": 0, "proba": [0.7, 0.3]},
        {"request_id": "a2", "prediction": 1, "proba": [0.4, 0.6]},
        {"request_id": "a3", "status": 500},
        {"request_id": "a4", "prediction": 1, "forced": True, "proba": [0.1, 0.9]},
        # B.
        {"request_id": "b1", "variant": "B", "prediction": 0, "proba": [0.6, 0.4]},
        {"request_id": "b2", "variant": "B", "prediction": 1, "proba": [0.3, 0.7]},
        # The shadow S saw a1 and b1 (the caller's ids and rows), and the forced a4.
        {"request_id": "a1", "row": 0, "variant": "S", "shadow": True, "prediction": 0},
        {"request_id": "a1", "row": 1, "variant": "S", "shadow": True, "prediction": 0},
        {"request_id": "b1", "variant": "S", "shadow": True, "prediction": 1},
        {"request_id": "a4", "variant": "S", "shadow": True, "forced": True, "prediction": 1},
    ]
    # Labels: a2's label has not arrived yet; a label for an unknown request is ignored;
    # "a1"/1 came as text.
    labels = _labels(
        [
            ("a1", 0, "1"),
            ("a1", 1, "1"),
            ("b1", 0, "0"),
            ("b2", 0, "0"),
            ("zz", 0, "1"),
            ("a4", 0, "1"),
        ]
    )
    joined = join_labels(_log(rows), labels)
    r = _json(performance_by_variant(joined))
    assert r["task"] == "classification"
    a, b, s = r["variants"]["A"], r["variants"]["B"], r["variants"]["S"]
    assert (a["rows"], a["labeled"], a["forced_rows"], a["errors"]) == (3, 2, 1, 1)
    assert a["coverage"] == pytest.approx(2 / 3) and a["shadow"] is False
    assert a["metrics"]["accuracy"] == 0.5 and a["metrics"]["n"] == 2
    assert (b["rows"], b["labeled"]) == (2, 2)
    assert b["metrics"]["accuracy"] == 0.5
    assert s["shadow"] is True and s["rows"] == 4 and s["labeled"] == 4
    assert s["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score([1, 1, 0, 1], [0, 0, 1, 1]))
    assert r["rows"] == 9 and r["labeled"] == 8
    # B's labels are all "0": one class, no AUC, no crash.
    assert b["metrics"]["roc_auc"] is None
    # A's AUC over its two labeled rows (both positive) is undefined too.
    assert a["metrics"]["roc_auc"] is None


def test_duplicate_labels_latest_wins_and_no_labels(tmp_path: Path) -> None:
    rows = [{"request_id": f"r{i}", "prediction": i % 2} for i in range(4)]
    store = LabelStore(str(tmp_path))
    store.ingest("ep", {"r0": 1, "r1": 1, "r2": 0, "r3": 0})  # r0 and r3 wrong
    joined = join_labels(_log(rows), store.read_labels("ep"))
    assert performance_by_variant(joined)["variants"]["A"]["metrics"]["accuracy"] == 0.5
    # Corrections: a later ingest wins, and within one batch the last occurrence.
    store.ingest("ep", [("r0", 0), ("r3", 0), ("r3", 1)])
    joined = join_labels(_log(rows), store.read_labels("ep"))
    r = performance_by_variant(joined)["variants"]["A"]
    assert r["metrics"]["accuracy"] == 1.0 and (r["rows"], r["labeled"]) == (4, 4)
    none = performance_by_variant(join_labels(_log(rows), _labels([])))
    assert none["variants"]["A"]["labeled"] == 0 and none["variants"]["A"]["metrics"] is None
    assert none["coverage"] == 0.0


def test_by_variant_roc_auc_infers_the_proba_column_order() -> None:
    rng = np.random.default_rng(5)
    n = 200
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.4 * y + rng.uniform(0, 0.6, n), 0.01, 0.99)
    pred = (p1 > 0.5).astype(int)
    rows = [
        {"request_id": f"r{i}", "prediction": int(pred[i]), "proba": [1 - p1[i], p1[i]]}
        for i in range(n)
    ]
    labels = _labels([(f"r{i}", 0, int(y[i])) for i in range(n)])
    m = performance_by_variant(join_labels(_log(rows), labels))["variants"]["A"]["metrics"]
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))


def test_task_detection_and_regression_by_variant() -> None:
    f = pa.array([0.5, 1.25, 3.0])
    assert detect_task(f, pa.array([0.4, 1.0, 3.3])) == "regression"
    assert detect_task(pa.array([0, 1, 1]), pa.array([0, 1, 0])) == "classification"
    assert detect_task(pa.array(["a", "b"]), pa.array(["a", "a"])) == "classification"
    assert detect_task(pa.array(list(range(30))), pa.array(list(range(30)))) == "regression"
    assert detect_task(f, f, pa.array([[0.1, 0.9]] * 3)) == "classification"
    log = pa.table(
        {
            "request_id": ["a", "b", "c"],
            "row": pa.array([0, 0, 0], pa.int32()),
            "variant": ["A", "A", "B"],
            "shadow": [False, False, False],
            "forced": [False, False, False],
            "status": [200, 200, 200],
            "prediction": [1.5, 2.5, 10.25],
        }
    )
    joined = join_labels(log, _labels([("a", 0, 1.0), ("b", 0, 3.0), ("c", 0, 10.0)]))
    r = _json(performance_by_variant(joined))
    assert r["task"] == "regression"
    assert r["variants"]["A"]["metrics"]["mae"] == 0.5
    assert r["variants"]["B"]["metrics"]["rmse"] == 0.25
    with pytest.raises(InvalidInput):
        performance_by_variant(joined, task="ranking")


# --------------------------------------------------------------------------- A/B verdicts


def _pair(acc_a: float, acc_b: float, n: int, seed: int = 0) -> tuple[tuple, tuple]:
    rng = np.random.default_rng(seed)
    y_a, y_b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    right_a, right_b = rng.random(n) < acc_a, rng.random(n) < acc_b
    return (y_a, np.where(right_a, y_a, 1 - y_a)), (y_b, np.where(right_b, y_b, 1 - y_b))


def test_z_test_equals_the_formula_and_sample_size() -> None:
    a, b = _pair(0.80, 0.85, 2000)
    r = compare_variants(a, b, "accuracy")
    x1, x2 = int(np.sum(a[0] == a[1])), int(np.sum(b[0] == b[1]))
    n1 = n2 = 2000
    p1, p2 = x1 / n1, x2 / n2
    pool = (x1 + x2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pool * (1 - pool) * (2 / 2000))
    assert r["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
    half = scipy_stats.norm.ppf(0.975) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((p2 - p1 - half, p2 - p1 + half))
    za, zb = scipy_stats.norm.ppf(0.975), scipy_stats.norm.ppf(0.8)
    pbar = (p1 + p2) / 2
    need = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    assert r["needed_per_variant"] == math.ceil(need**2 / (p2 - p1) ** 2)
    assert r["significant"] and r["better"] == "B"
    assert r["verdict"].startswith("B better than A on accuracy (p=")
    assert r["method"] == "z_test" and r["difference"] == pytest.approx(p2 - p1)
    # error_rate: same p-value, the sign flips, lower is better.
    e = compare_variants(a, b, "error_rate", names=("old", "new"))
    assert e["p_value"] == pytest.approx(r["p_value"])
    assert e["difference"] == pytest.approx(-(p2 - p1)) and e["better"] == "new"
    _json(r)


def test_no_significant_difference_yet_says_how_many_more() -> None:
    a, b = _pair(0.80, 0.83, 200, seed=0)
    r = compare_variants(a, b, "accuracy")
    assert not r["significant"] and r["better"] is None
    assert r["more_needed_per_variant"] == r["needed_per_variant"] - 200 > 0
    assert f"~{r['more_needed_per_variant']} more labeled rows per variant" in r["verdict"]
    same = compare_variants(([1, 0, 1], [1, 0, 1]), ([1, 1, 0], [1, 1, 0]), "accuracy")
    assert same["p_value"] == 1.0 and "no difference" in same["verdict"]
    few = compare_variants(([1], [1]), ([1, 0], [1, 0]))
    assert few["verdict"].startswith("not enough labeled rows")


def test_bootstrap_metrics() -> None:
    rng = np.random.default_rng(7)
    n = 1500
    y_a, y_b = rng.normal(size=n), rng.normal(size=n)
    a = (y_a, y_a + rng.normal(scale=1.0, size=n))
    b = (y_b, y_b + rng.normal(scale=0.8, size=n))
    r = compare_variants(a, b, "mae", n_boot=500, seed=1)
    assert r["method"] == "bootstrap" and r["significant"] and r["better"] == "B"
    assert r["a"]["value"] == pytest.approx(skm.mean_absolute_error(*a))
    assert r["ci_low"] < r["difference"] < r["ci_high"] < 0
    assert compare_variants(a, b, "mae", n_boot=500, seed=1) == r  # seeded
    rm = compare_variants(a, b, "rmse", n_boot=200)
    assert rm["b"]["value"] == pytest.approx(math.sqrt(skm.mean_squared_error(*b)))
    # Identical variants: the CI covers 0.
    same = compare_variants(a, a, "mae", n_boot=200)
    assert not same["significant"] and same["ci_low"] <= 0 <= same["ci_high"]
    # f1 and roc_auc on classification data.
    ya, pa_ = _pair(0.7, 0.9, 800, seed=2)[0], _pair(0.7, 0.9, 800, seed=2)[1]
    f = compare_variants(ya, pa_, "f1", n_boot=300)
    assert f["a"]["value"] == pytest.approx(skm.f1_score(*ya)) and f["better"] == "B"
    score_a = np.where(ya[1] == 1, 0.7, 0.3) + rng.uniform(-0.2, 0.2, 800)
    auc = compare_variants((*ya, score_a), (*ya, score_a), "roc_auc", n_boot=200)
    assert auc["a"]["value"] == pytest.approx(skm.roc_auc_score(ya[0], score_a))
    assert not auc["significant"]
    with pytest.raises(InvalidInput, match="proba"):
        compare_variants(ya, pa_, "roc_auc")
    with pytest.raises(InvalidInput, match="unknown metric"):
        compare_variants(ya, pa_, "speed")
    _json(auc)


def test_delong_equals_the_pairwise_definition() -> None:
    rng = np.random.default_rng(12)
    n = 300
    sides = []
    for shift in (0.5, 0.9):
        y = rng.integers(0, 2, n)
        score = (rng.normal(size=n) + shift * y).round(1)  # ties on purpose
        sides.append((y, (score > 0.4).astype(int), score))
    r = compare_variants(*sides, "roc_auc")
    assert r["method"] == "delong"

    def auc_var(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
        return psi.mean(), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size

    (a, va), (b, vb) = auc_var(sides[0][0], sides[0][2]), auc_var(sides[1][0], sides[1][2])
    assert r["a"]["value"] == pytest.approx(skm.roc_auc_score(sides[0][0], sides[0][2]))
    assert r["difference"] == pytest.approx(b - a)
    z = (b - a) / math.sqrt(va + vb)
    assert r["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
    assert r["ci_high"] - r["ci_low"] == pytest.approx(2 * 1.959964 * math.sqrt(va + vb))
    _json(r)


def test_bootstrap_multiclass_metrics() -> None:
    rng = np.random.default_rng(13)

    def variant(acc: float, n: int = 400) -> tuple:
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < acc, y, (y + 1) % 3)
        proba = np.full((n, 3), 0.1)
        proba[np.arange(n), pred] = 0.8
        proba = proba + rng.uniform(0, 0.01, (n, 3))
        return y, pred, proba / proba.sum(axis=1, keepdims=True)

    a, b = variant(0.6), variant(0.9)
    f = compare_variants(a, b, "f1", n_boot=300)
    assert f["a"]["value"] == pytest.approx(skm.f1_score(a[0], a[1], average="macro"))
    assert f["significant"] and f["better"] == "B" and "p<=" in f["verdict"]
    auc = compare_variants(a, b, "roc_auc", n_boot=200)
    assert auc["method"] == "bootstrap"
    assert auc["b"]["value"] == pytest.approx(skm.roc_auc_score(b[0], b[2], multi_class="ovr"))
    assert auc["better"] == "B"


def test_compare_variants_from_the_joined_log() -> None:
    rows, labels = [], []
    rng = np.random.default_rng(8)
    for i in range(600):
        v = "A" if i % 2 else "B"
        y = int(rng.integers(0, 2))
        right = rng.random() < (0.7 if v == "A" else 0.9)
        rows.append({"request_id": f"r{i}", "variant": v, "prediction": y if right else 1 - y})
        labels.append((f"r{i}", 0, y))
    rows.append({"request_id": "f", "variant": "B", "forced": True, "prediction": 1})
    labels.append(("f", 0, 0))
    joined = join_labels(_log(rows), _labels(labels))
    a, b = variant_rows(joined, "A"), variant_rows(joined, "B")
    assert (a.num_rows, b.num_rows) == (300, 300)  # the forced row is left out
    r = compare_variants(a, b)
    assert r["significant"] and r["better"] == "B"


# --------------------------------------------------------------------------- estimation (CBPE)


def test_cbpe_on_calibrated_binary_data_is_close_to_realised() -> None:
    rng = np.random.default_rng(9)
    n = 20_000
    p1 = rng.beta(2, 2, n)
    y = (rng.random(n) < p1).astype(int)  # calibrated by construction
    proba = np.stack([1 - p1, p1], 1)
    est = _json(estimate_performance(proba, [0, 1]))
    real = classification_metrics(y, (p1 > 0.5).astype(int), proba)
    assert est["estimated"] and est["method"] == "cbpe" and not est["calibrated"]
    for k in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert est[k] == pytest.approx(real[k], abs=0.02), k


def test_cbpe_calibration_fixes_overconfident_scores() -> None:
    rng = np.random.default_rng(10)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        p_true = rng.beta(2, 2, n)
        y = (rng.random(n) < p_true).astype(int)
        logit = np.log(p_true / (1 - p_true)) * 3  # overconfident model
        return y, 1 / (1 + np.exp(-logit))

    y_ref, s_ref = sample(5000)
    y, s = sample(20_000)
    proba = np.stack([1 - s, s], 1)
    real = classification_metrics(y, (s > 0.5).astype(int), proba)
    naive = estimate_performance(proba, [0, 1])
    fixed = estimate_performance(
        proba, [0, 1], calibration=(y_ref, np.stack([1 - s_ref, s_ref], 1))
    )
    assert fixed["calibrated"]
    assert abs(naive["accuracy"] - real["accuracy"]) > 0.08  # overconfidence overestimates
    for k in ("accuracy", "f1", "roc_auc"):
        assert fixed[k] == pytest.approx(real[k], abs=0.025), k


def test_cbpe_multiclass() -> None:
    rng = np.random.default_rng(11)
    n, k = 20_000, 3
    logits = rng.normal(size=(n, k)) * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(proba, 1)).sum(1)  # drawn from proba: calibrated
    est = estimate_performance(proba, ["a", "b", "c"])
    real = classification_metrics(
        np.array(["a", "b", "c"])[y], np.array(["a", "b", "c"])[proba.argmax(1)], proba
    )
    assert est["average"] == "macro" and est["positive"] is None
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert est[key] == pytest.approx(real[key], abs=0.02), key
    cal = estimate_performance(
        proba, ["a", "b", "c"], calibration=(np.array(["a", "b", "c"])[y[:3000]], proba[:3000])
    )
    assert cal["calibrated"] and cal["accuracy"] == pytest.approx(real["accuracy"], abs=0.03)
    with pytest.raises(InvalidInput, match="not among classes"):
        estimate_performance(proba[:2], ["a", "b", "c"], calibration=(["a", "z"], proba[:2]))
    with pytest.raises(InvalidInput):
        estimate_performance(proba, ["a", "b"])
    assert estimate_performance(proba[:0], ["a", "b", "c"])["accuracy"] is None
