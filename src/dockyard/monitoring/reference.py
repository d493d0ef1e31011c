"""Reference profiles of datasets: computed where the data is, stored as a run artifact.

``dockyard.log_input(train_df)`` profiles the data it describes (:func:`profile_data`) and
logs the profile as the run artifact ``profiles/<dataset digest>.json``; a monitor finds it
through the model version registered from that run (its ``datasets`` lineage) and never
reloads the training data. Only the profile leaves the user's process: per column counts,
quantiles, a histogram over the reference's decile edges, top categories and a bounded
sample of at most 10,000 values (see :mod:`dockyard.monitoring.profile`). ``profile=False``
on ``log_input`` keeps even that at home.

Files are streamed: a Parquet file is profiled batch by batch, never loaded whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import InvalidInput

if TYPE_CHECKING:
    from dockyard.monitoring.profile import DatasetProfile

__all__ = ["PROFILE_DIR", "profile_artifact_path", "profile_data", "profile_json"]

#: Run-artifact folder of dataset profiles: ``profiles/<dataset digest>.json``.
PROFILE_DIR = "profiles"


def profile_artifact_path(digest: str) -> str:
    return f"{PROFILE_DIR}/{digest}.json"


def profile_data(data: Any) -> DatasetProfile:
    """The profile of a DataFrame, a NumPy array (columns ``f0``, ``f1``...; as
    ``describe_dataset`` names them), a pyarrow Table, or a ``.csv``/``.parquet`` file."""
    import numpy as np

    from dockyard.monitoring.profile import ProfileBuilder, profile_table

    if isinstance(data, str | os.PathLike):
        path = Path(os.fspath(data)).expanduser()
        if not path.is_file():
            raise InvalidInput(f"dataset file not found: {str(path)!r}")
        lower = path.name.lower()
        if lower.endswith((".parquet", ".pq")):
            import pyarrow as pa
            import pyarrow.parquet as pq

            builder = ProfileBuilder()
            try:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 16):
                    builder.update(batch)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(f"dataset file {str(path)!r} cannot be read: {exc}") from None
            return builder.build()
        if ".csv" in lower:
            import pandas as pd

            try:
                return profile_table(pd.read_csv(path))
            except (ValueError, OSError) as exc:
                raise InvalidInput(f"dataset file {str(path)!r} cannot be read: {exc}") from None
        raise InvalidInput(f"unsupported dataset file type: {str(path)!r}; use .csv or .parquet")
    if isinstance(data, np.ndarray):
        import pandas as pd

        arr = data.reshape(-1, 1) if data.ndim == 1 else data
        if arr.ndim != 2:
            raise InvalidInput(f"cannot profile a {data.ndim}-dimensional array")
        return profile_table(pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])]))
    return profile_table(data)


def profile_json(prof: DatasetProfile) -> bytes:
    """The stored form of a profile: compact JSON."""
    return json.dumps(prof.to_dict(), separators=(",", ":"), allow_nan=False).encode()
