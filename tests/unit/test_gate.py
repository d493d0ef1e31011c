"""The validation gate: requirement parsing, metrics on constructed models, verdicts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from dockyard.core.errors import InvalidInput
from dockyard.registry.gate import (
    Requirement,
    check,
    evaluate,
    infer_task,
    parse_requirement,
)


class Fixed:
    """A model that returns given predictions (and probabilities) whatever the input."""

    def __init__(self, preds: list[Any], proba: list[list[float]] | None = None) -> None:
        self.preds = preds
        if proba is not None:
            self.proba = proba
            self.classes_ = [0, 1] if len(proba[0]) == 2 else list(range(len(proba[0])))

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.preds)

    def __getattr__(self, name: str) -> Any:
        if name == "predict_proba" and "proba" in self.__dict__:
            return lambda x: np.asarray(self.proba)
        raise AttributeError(name)


Y = [0, 0, 1, 1]
X = np.zeros((4, 2))


def test_parse_absolute_and_relative_requirements() -> None:
    assert parse_requirement("roc_auc>=0.80") == Requirement("roc_auc>=0.80", "roc_auc", ">=", 0.8)
    assert parse_requirement(" rmse <= 1e-2 ") == Requirement("rmse<=1e-2", "rmse", "<=", 0.01)
    rel = parse_requirement("roc_auc >= champion - 0.01")
    assert (rel.text, rel.op, rel.threshold, rel.relative) == (
        "roc_auc>=champion-0.01",
        ">=",
        None,
        ("-", 0.01),
    )
    assert rel.threshold_for(0.9) == pytest.approx(0.89)
    assert parse_requirement("f1>champion").threshold_for(0.5) == 0.5
    assert parse_requirement("mae<champion*1.5").threshold_for(2.0) == 3.0
    assert parse_requirement("accuracy==champion+0.1").threshold_for(0.5) == pytest.approx(0.6)
    assert parse_requirement("r2>=champion").threshold_for(None) is None
    for op in (">=", ">", "<=", "<", "=="):
        assert parse_requirement(f"accuracy{op}0.5").op == op


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("auc>=0.8", "unknown metric 'auc'; known metrics: accuracy, precision"),
        ("roc_auc=>0.8", "not understood"),
        ("roc_auc>=", "not understood"),
        ("roc_auc>=high", "not a number"),
        ("roc_auc>=champion-x", "not a number"),
        ("roc_auc>=champion/2", "not a number"),
        ("roc_auc>=nan", "finite"),
        ("", "non-empty"),
    ],
)
def test_bad_requirements_are_explained(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        parse_requirement(text)


def test_infer_task() -> None:
    assert infer_task(["roc_auc", "f1"]) == "classification"
    assert infer_task(["rmse"]) == "regression"
    assert infer_task([]) is None
    with pytest.raises(InvalidInput, match="mix"):
        infer_task(["rmse", "f1"])


def test_binary_classification_metrics() -> None:
    model = Fixed([0, 1, 1, 1], proba=[[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = evaluate(model, X, Y, "classification")
    assert m["accuracy"] == 0.75
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == 1.0
    assert m["f1"] == pytest.approx(0.8)
    assert m["roc_auc"] == 1.0  # every positive scores above every negative
    expected_ll = -np.mean([math.log(0.9), math.log(0.4), math.log(0.7), math.log(0.8)])
    assert m["log_loss"] == pytest.approx(expected_ll)


def test_metrics_needing_probabilities_are_skipped_with_a_note() -> None:
    notes: dict[str, str] = {}
    m = evaluate(Fixed([0, 0, 1, 1]), X, Y, "classification", notes=notes)
    assert m == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert "predict_proba" in notes["roc_auc"] and "predict_proba" in notes["log_loss"]
    row = check(parse_requirement("roc_auc>=0.5"), m, None, notes=notes)
    assert row["passed"] is False and "predict_proba" in row["note"]


def test_multiclass_uses_macro_averages() -> None:
    y = [0, 1, 2, 2]
    model = Fixed(
        [0, 1, 2, 1],
        proba=[[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3]],
    )
    m = evaluate(model, X, y, "classification")
    assert m["accuracy"] == 0.75
    # per class recall: 1, 1, 0.5 -> macro 5/6; precision: 1, 0.5, 1 -> macro 5/6
    assert m["recall"] == pytest.approx(5 / 6)
    assert m["precision"] == pytest.approx(5 / 6)
    assert 0.0 < m["roc_auc"] <= 1.0 and m["log_loss"] > 0


def test_regression_metrics() -> None:
    m = evaluate(Fixed([1.0, 2.0, 3.0, 5.0]), X, [1, 2, 3, 4], "regression")
    assert m == pytest.approx({"mae": 0.25, "rmse": 0.5, "r2": 0.8})


def test_a_wrong_number_of_predictions_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="3 predictions for 4 rows"):
        evaluate(Fixed([0, 1, 1]), X, Y, "classification")


# Champion: accuracy 0.75. Candidates: better 1.0, worse 0.5, equal 0.75.
CHAMPION = evaluate(Fixed([0, 1, 1, 1]), X, Y, "classification")
CANDIDATES = {
    "better": evaluate(Fixed([0, 0, 1, 1]), X, Y, "classification"),
    "worse": evaluate(Fixed([1, 0, 1, 0]), X, Y, "classification"),
    "equal": evaluate(Fixed([0, 1, 1, 1]), X, Y, "classification"),
}


@pytest.mark.parametrize(
    ("requirement", "verdicts"),
    [
        ("accuracy>=0.75", {"better": True, "worse": False, "equal": True}),
        ("accuracy>0.75", {"better": True, "worse": False, "equal": False}),
        ("accuracy>=champion", {"better": True, "worse": False, "equal": True}),
        ("accuracy>champion", {"better": True, "worse": False, "equal": False}),
        ("accuracy>=champion-0.01", {"better": True, "worse": False, "equal": True}),
        ("accuracy>=champion-0.3", {"better": True, "worse": True, "equal": True}),
        ("accuracy>=champion*1.1", {"better": True, "worse": False, "equal": False}),
        ("accuracy==champion", {"better": False, "worse": False, "equal": True}),
        ("accuracy<=champion", {"better": False, "worse": True, "equal": True}),
    ],
)
def test_verdicts_for_better_worse_and_equal_candidates(
    requirement: str, verdicts: dict[str, bool]
) -> None:
    req = parse_requirement(requirement)
    for kind, metrics in CANDIDATES.items():
        row = check(req, metrics, CHAMPION)
        assert row["passed"] is verdicts[kind], (requirement, kind, row)
        assert row["candidate"] == metrics["accuracy"]
        assert row["champion"] == 0.75
        assert row["threshold"] == pytest.approx(req.threshold_for(0.75))
        assert row["requirement"] == requirement and row["metric"] == "accuracy"


def test_relative_checks_without_a_champion_pass_with_a_note() -> None:
    row = check(parse_requirement("accuracy>=champion-0.01"), CANDIDATES["worse"], None)
    assert row["passed"] is True and row["champion"] is None and row["threshold"] is None
    assert "no champion" in row["note"]
    absolute = check(parse_requirement("accuracy>=0.9"), CANDIDATES["worse"], None)
    assert absolute["passed"] is False and absolute["threshold"] == 0.9
