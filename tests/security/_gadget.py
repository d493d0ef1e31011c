"""A class whose deserialisation runs code: the stand-in for a malicious type in a package.

It is an ordinary importable estimator, so skops records it as a type the author trusted; when
skops rebuilds it, ``__setstate__`` creates the marker file named in its state -- proof that
code the package chose ran in the loading process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class Gadget(ClassifierMixin, BaseEstimator):
    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def fit(self, x: Any, y: Any) -> Gadget:
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, x: Any) -> Any:
        return np.zeros(len(x), dtype=int)

    def predict_proba(self, x: Any) -> Any:
        return np.tile([0.5, 0.5], (len(x), 1))

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("code ran while loading")
        self.__dict__.update(state)
