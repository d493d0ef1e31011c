"""Models for the inference server tests: importable by the server process (its PYTHONPATH
includes this folder), stored with skops as python_function packages."""

from __future__ import annotations

import time
from typing import Any


class SleepyModel:
    """Answers like a constant classifier, after sleeping ``seconds``."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds

    def predict(self, frame: Any) -> Any:
        import numpy as np

        if len(frame) < 5:  # the warm-up (5 example rows) stays fast
            time.sleep(self.seconds)
        return np.zeros(len(frame), dtype="int64")


class FailingModel:
    """Raises on every request (but not on its 5-row warm-up)."""

    def predict(self, frame: Any) -> Any:
        import numpy as np

        if len(frame) != 5:
            raise RuntimeError("this model always fails")
        return np.zeros(len(frame), dtype="int64")
