"""Request bodies of the model registry routes (:mod:`dockyard.server.routes.models`).

Like :mod:`dockyard.server.schemas` these describe only the *shape* of a request: which fields,
which JSON types. Every rule about values -- model and alias names, which sources are accepted,
legal status transitions, gate requirements -- is the registry service's, checked for every
caller alike. Unknown fields are refused and JSON types are strict (``"3"`` is not a version).

Holdout data for ``validate`` travels inline, never as a path the server would open:

* ``{"columns": {"amount": [1.5, 2.0], "label": [0, 1]}}`` -- parallel columns, or
* ``{"records": [{"amount": 1.5, "label": 0}, ...]}`` -- one object per row,

with an optional ``"dtypes": {"amount": "float64", "when": "datetime64[ns]"}`` giving pandas
dtypes that JSON cannot carry (categories, datetimes, narrow integers). ``null`` is a missing
value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from dockyard.core.wire import HOLDOUT_DTYPE_PATTERN
from dockyard.server.schemas import Scalar, _Body

__all__ = [
    "ApprovalStep",
    "CreateModelVersion",
    "CreateRegisteredModel",
    "HoldoutData",
    "PackageFile",
    "RetireVersion",
    "SetAlias",
    "SetApprovalPolicy",
    "SetModelTag",
    "TransitionVersion",
    "UpdateRegisteredModel",
    "ValidateVersion",
]

#: A cell of holdout data: any JSON scalar, null for a missing value.
Cell = str | int | float | bool | None
DTYPE_PATTERN = HOLDOUT_DTYPE_PATTERN
#: A version number as a request field: a positive integer that fits the store's columns.
_VERSION = {"ge": 1, "le": 2**31 - 1}


class CreateRegisteredModel(_Body):
    name: str
    description: str = ""
    tags: dict[str, Scalar] = Field(default_factory=dict)


class UpdateRegisteredModel(_Body):
    description: str | None = None


class SetModelTag(_Body):
    value: Scalar


class PackageFile(_Body):
    sha256: str
    size: int = Field(ge=0)


class CreateModelVersion(_Body):
    """A new version from ``source`` (``runs:/<run_id>/<path>`` or ``models:/<name>/<version>``)
    or from ``files`` (an uploaded local package: its manifest's files, each already sent with
    ``POST /api/v1/blobs``); exactly one of the two."""

    source: str | None = Field(
        None, description="runs:/<run_id>/<artifact_path> or models:/<name>/<version>"
    )
    files: dict[str, PackageFile] | None = Field(
        None,
        description='Local package: {"<path>": {"sha256": ..., "size": ...}} for every file, '
        "manifest.json included.",
    )
    description: str = ""
    tags: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> CreateModelVersion:
        if (self.source is None) == (self.files is None):
            raise ValueError("give exactly one of 'source' and 'files'")
        return self


class TransitionVersion(_Body):
    to: str = Field(description="candidate, approved, production, deprecated, retired, rejected")
    reason: str | None = None
    override_gate: bool = False


class ApprovalStep(_Body):
    action: Literal["request", "approve", "reject"] = Field(
        description="request an approval, approve it or reject it (a rejection needs a comment)"
    )
    comment: str = ""


class SetApprovalPolicy(_Body):
    require_approval: bool = Field(
        description="true: promotion to production needs a four-eyes approval"
    )


class RetireVersion(_Body):
    reason: str
    replacement_version: int | None = Field(None, **_VERSION)


class SetAlias(_Body):
    version: int = Field(**_VERSION)


class HoldoutData(_Body):
    columns: dict[str, list[Cell]] | None = None
    records: list[dict[str, Cell]] | None = None
    dtypes: dict[str, Annotated[str, StringConstraints(pattern=DTYPE_PATTERN)]] = Field(
        default_factory=dict,
        description="pandas dtype per column: bool, int64, float64, string, category, "
        "datetime64[ns], datetime64[ns, UTC], ...",
    )

    @model_validator(mode="after")
    def _one_layout(self) -> HoldoutData:
        if (self.columns is None) == (self.records is None):
            raise ValueError("give exactly one of 'columns' and 'records'")
        if self.columns is not None:
            lengths = {len(values) for values in self.columns.values()}
            if len(lengths) > 1:
                sizes = {name: len(values) for name, values in self.columns.items()}
                raise ValueError(f"every column must have the same length; got {sizes}")
        return self

    def column_names(self) -> list[str]:
        if self.columns is not None:
            return list(self.columns)
        names: dict[str, None] = {}
        for row in self.records or ():
            names.update(dict.fromkeys(row))
        return list(names)

    def to_frame(self) -> Any:
        """The data as a pandas DataFrame (pandas is imported here, on first use)."""
        import pandas as pd

        from dockyard.core.errors import InvalidInput

        frame = (
            pd.DataFrame(self.columns)
            if self.columns is not None
            else pd.DataFrame.from_records(self.records or [], columns=self.column_names())
        )
        unknown = sorted(set(self.dtypes) - set(frame.columns))
        if unknown:
            raise InvalidInput(f"data.dtypes names columns the data does not have: {unknown}")
        for column, dtype in self.dtypes.items():
            try:
                frame[column] = frame[column].astype(dtype)
            except Exception as exc:  # pandas raises many kinds; all mean a bad dtype
                raise InvalidInput(
                    f"data column {column!r} cannot be read as dtype {dtype!r}: {exc}"[:400],
                    column=column,
                ) from None
        return frame


class ValidateVersion(_Body):
    data: HoldoutData
    label: str = Field(description="The column of `data` that holds the true values.")
    against: str | int | None = Field(
        "champion",
        description="Alias, status, 'latest' or version number to compare with; null for "
        "absolute checks only.",
    )
    requirements: list[str] = Field(
        default_factory=list, description='e.g. ["roc_auc>=0.80", "roc_auc>=champion-0.01"]'
    )
    trust_pickle: bool = Field(
        False, description="Always refused by the server (403): it never unpickles on request."
    )
