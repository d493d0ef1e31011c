"""The synthetic fraud dataset: determinism, drift knob, label model, time split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dockyard.core.errors import InvalidInput
from dockyard.data.dataset import dataset_digest
from dockyard.data.synthetic import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    MERCHANT_CATEGORIES,
    NUMERIC_COLUMNS,
    make_fraud_transactions,
    train_test_split_by_time,
)

# Frames are cached per argument set: several tests look at the same sample, and generation
# is the bulk of this module's run time.
_CACHE: dict[tuple[object, ...], pd.DataFrame] = {}


def frame(n: int = 20_000, **kwargs: object) -> pd.DataFrame:
    key = (n, *sorted(kwargs.items()))
    if key not in _CACHE:
        _CACHE[key] = make_fraud_transactions(n, **kwargs)  # type: ignore[arg-type]
    return _CACHE[key].copy()


# --- shape and types -------------------------------------------------------------------------


def test_columns_dtypes_and_constants() -> None:
    df = frame()
    assert len(df) == 20_000
    assert isinstance(df.index, pd.RangeIndex)
    assert set(FEATURE_COLUMNS) == set(CATEGORICAL_COLUMNS) | set(NUMERIC_COLUMNS)
    assert set(FEATURE_COLUMNS) < set(df.columns)
    assert LABEL_COLUMN == "is_fraud" and LABEL_COLUMN not in FEATURE_COLUMNS
    assert 12 <= df.shape[1] <= 16
    for col in CATEGORICAL_COLUMNS:
        assert isinstance(df[col].dtype, pd.CategoricalDtype)
    assert df["timestamp"].dtype == "datetime64[ns]"
    assert df["is_foreign"].dtype == bool
    for col in ("hour", "card_age_days", "customer_age", "txn_count_24h", LABEL_COLUMN):
        assert pd.api.types.is_integer_dtype(df[col]), col
    for col in ("amount", "distance_from_home_km", "avg_amount_30d", "device_trust_score"):
        assert pd.api.types.is_float_dtype(df[col]), col
    assert set(df["channel"].unique()) == {"pos", "online", "atm"}
    assert set(df["merchant_category"].cat.categories) == set(MERCHANT_CATEGORIES)


def test_values_are_plausible() -> None:
    df = frame()
    assert df["transaction_id"].is_unique
    assert df["transaction_id"].str.fullmatch(r"tx_[0-9a-f]{16}").all()
    assert df["timestamp"].is_monotonic_increasing
    assert df["timestamp"].min() >= pd.Timestamp("2026-01-01")
    assert df["timestamp"].max() < pd.Timestamp("2026-01-31")
    assert (df["hour"] == df["timestamp"].dt.hour).all()
    assert (df["amount"] > 0).all() and (df["avg_amount_30d"] > 0).all()
    assert df["customer_age"].between(18, 90).all()
    assert (df["card_age_days"] >= 0).all() and (df["txn_count_24h"] >= 0).all()
    trust = df["device_trust_score"]
    assert trust.dropna().between(0.0, 1.0).all()
    assert 0.005 < trust.isna().mean() < 0.02  # ~1% missing at drift 0
    assert set(df[LABEL_COLUMN].unique()) == {0, 1}
    # ATMs serve cash withdrawals only; foreign transactions are far from home.
    atm = df["channel"] == "atm"
    assert (df.loc[atm, "merchant_category"] == "cash_withdrawal").all()
    assert df.loc[df["is_foreign"], "distance_from_home_km"].min() >= 300


def test_start_and_days_place_the_period() -> None:
    df = make_fraud_transactions(500, start="2026-03-10", days=2)
    assert df["timestamp"].min() >= pd.Timestamp("2026-03-10")
    assert df["timestamp"].max() < pd.Timestamp("2026-03-12")


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_frame() -> None:
    a = make_fraud_transactions(3_000, random_state=11, drift=0.3)
    b = make_fraud_transactions(3_000, random_state=11, drift=0.3)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert dataset_digest(a) == dataset_digest(b)


def test_other_seed_gives_other_frame() -> None:
    a = make_fraud_transactions(3_000, random_state=11)
    b = make_fraud_transactions(3_000, random_state=12)
    assert dataset_digest(a) != dataset_digest(b)
    assert not np.array_equal(a["amount"].to_numpy(), b["amount"].to_numpy())
    # Ids are distinct across seeds and drift levels, so frames can be concatenated safely.
    c = make_fraud_transactions(3_000, random_state=11, drift=0.5)
    ids = pd.concat([a["transaction_id"], b["transaction_id"], c["transaction_id"]])
    assert ids.is_unique


def _ks_statistic(a: pd.Series, b: pd.Series) -> float:
    """The two-sample Kolmogorov-Smirnov statistic (max distance between the two CDFs)."""
    x, y = np.sort(a.dropna().to_numpy()), np.sort(b.dropna().to_numpy())
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.abs(cdf_x - cdf_y).max())


def test_same_drift_other_seed_is_the_same_distribution() -> None:
    ref, same, drifted = frame(), frame(random_state=1), frame(random_state=1, drift=1.0)
    # Critical KS distance at the 1% level for two samples of 20k: 1.63 * sqrt(2 / 20k).
    critical = 1.63 * math.sqrt(2 / 20_000)
    for col in ("amount", "device_trust_score", "card_age_days", "distance_from_home_km"):
        assert _ks_statistic(ref[col], same[col]) < critical, col
        assert _ks_statistic(ref[col], drifted[col]) > 3 * critical, col
    ref_mix = ref["merchant_category"].value_counts(normalize=True)
    same_mix = same["merchant_category"].value_counts(normalize=True)
    assert (ref_mix - same_mix).abs().max() < 0.015
    assert abs(ref[LABEL_COLUMN].mean() - same[LABEL_COLUMN].mean()) < 0.006


# --- the drift knob --------------------------------------------------------------------------


def test_drift_moves_the_world() -> None:
    levels = [frame(random_state=3, drift=d) for d in (0.0, 0.5, 1.0)]
    amounts = [df["amount"].mean() for df in levels]
    spreads = [np.log(df["amount"]).std() for df in levels]
    online = [(df["channel"] == "online").mean() for df in levels]
    trust = [df["device_trust_score"].mean() for df in levels]
    missing = [df["device_trust_score"].isna().mean() for df in levels]
    assert amounts[0] < amounts[1] < amounts[2]
    assert spreads[0] < spreads[1] < spreads[2]
    assert online[0] < online[1] < online[2]
    assert trust[0] > trust[1] > trust[2]
    assert missing[0] < missing[1] < missing[2]
    assert missing[2] > 0.04


def test_crypto_appears_only_from_drift_one_half() -> None:
    for d in (0.0, 0.3, 0.49):
        df = make_fraud_transactions(5_000, random_state=4, drift=d)
        assert "crypto" not in df["merchant_category"].cat.categories
        assert not (df["merchant_category"] == "crypto").any()
    for d in (0.5, 1.0):
        df = make_fraud_transactions(5_000, random_state=4, drift=d)
        assert "crypto" in df["merchant_category"].cat.categories
        assert (df["merchant_category"] == "crypto").any()
    mid = (make_fraud_transactions(5_000, drift=0.5)["merchant_category"] == "crypto").mean()
    high = (make_fraud_transactions(5_000, drift=1.0)["merchant_category"] == "crypto").mean()
    assert mid < high


@pytest.mark.parametrize("bad", [-0.01, 1.01, 2, math.nan, math.inf, "0.5", None, True])
def test_invalid_drift_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        make_fraud_transactions(100, drift=bad)  # type: ignore[arg-type]
    assert "drift" in exc.value.message
    assert repr(bad) in exc.value.message
    assert exc.value.details["argument"] == "drift"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": 2.5}, "n_rows"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": "seed"}, "random_state"),
        ({"fraud_rate": 0.0}, "fraud_rate"),
        ({"fraud_rate": 1.0}, "fraud_rate"),
        ({"days": 0}, "days"),
        ({"start": "not a date"}, "start"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        make_fraud_transactions(**kwargs)  # type: ignore[arg-type]
    assert argument in exc.value.message
    assert exc.value.details["argument"] == argument


# --- the label ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.02, 0.1])
def test_fraud_rate_is_close_to_requested(rate: float) -> None:
    for d in (0.0, 1.0):
        observed = frame(30_000, random_state=5, drift=d, fraud_rate=rate)[LABEL_COLUMN].mean()
        # Binomial standard error at n=30k is at most 0.0017; allow ~4 of them.
        assert abs(observed - rate) < max(0.15 * rate, 0.007), (d, observed)


def _fit_logistic(train: pd.DataFrame) -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_COLUMNS)),
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), list(NUMERIC_COLUMNS)),
        ]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=500))
    return model.fit(train[list(FEATURE_COLUMNS)], train[LABEL_COLUMN])


def test_logistic_regression_is_good_but_not_perfect_and_decays_with_drift() -> None:
    from sklearn.metrics import roc_auc_score

    model = _fit_logistic(frame())

    def auc(df: pd.DataFrame) -> float:
        scores = model.predict_proba(df[list(FEATURE_COLUMNS)])[:, 1]  # type: ignore[attr-defined]
        return float(roc_auc_score(df[LABEL_COLUMN], scores))

    reference = auc(frame(random_state=100))
    drifted = auc(frame(random_state=100, drift=1.0))
    assert 0.75 <= reference <= 0.97
    assert drifted < reference - 0.02


# --- time split --------------------------------------------------------------------------------


def test_train_test_split_by_time() -> None:
    df = make_fraud_transactions(1_000, random_state=6)
    shuffled = df.sample(frac=1.0, random_state=0)
    train, test = train_test_split_by_time(shuffled, test_fraction=0.25)
    assert (len(train), len(test)) == (750, 250)
    assert train["timestamp"].max() <= test["timestamp"].min()
    assert set(train.index).isdisjoint(test.index)
    assert set(train.index) | set(test.index) == set(df.index)
    pd.testing.assert_frame_equal(pd.concat([train, test]), df)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5, "0.2", 0.0001])
def test_train_test_split_rejects_bad_fraction(fraction: object) -> None:
    df = make_fraud_transactions(100)
    with pytest.raises(InvalidInput, match="test_fraction"):
        train_test_split_by_time(df, test_fraction=fraction)  # type: ignore[arg-type]


def test_train_test_split_needs_the_time_column() -> None:
    df = make_fraud_transactions(100).drop(columns="timestamp")
    with pytest.raises(InvalidInput, match="timestamp"):
        train_test_split_by_time(df)
