"""Request bodies of the REST API, as pydantic models.

These describe the *shape* of what a client sends (which fields, which JSON types); the rules
about values -- key syntax, name lengths, write-once params, run states -- belong to the
services, which check them for every caller alike. Models forbid unknown fields (a typo such as
``"nmae"`` is an error, not silently ignored) and are strict about JSON types (``"5"`` is not a
number, ``true`` is not an integer).

Metric values accept a JSON number or one of the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``: JSON cannot spell non-finite floats, and responses spell them that way too.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

__all__ = [
    "ERROR_RESPONSES",
    "CreateExperiment",
    "DatasetInputBody",
    "EndRun",
    "ErrorEnvelope",
    "ExperimentName",
    "ExperimentTag",
    "LogBatch",
    "LogInputs",
    "MetricColumns",
    "MetricPoint",
    "RenameRun",
    "SearchRuns",
    "StartRun",
]

_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _metric_value(value: Any) -> Any:
    """Read the string spellings of non-finite floats; anything else goes to float checks."""
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


MetricValue = Annotated[
    float,
    BeforeValidator(_metric_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
            ]
        }
    ),
]

#: Param and tag values: any JSON scalar, stored as its string form (like the SDK does).
Scalar = str | int | float | bool


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateExperiment(_Body):
    name: str
    tags: dict[str, Scalar] = Field(default_factory=dict)


class ExperimentName(_Body):
    """Body of rename and get-or-create."""

    name: str


class ExperimentTag(_Body):
    key: str
    value: Scalar


class StartRun(_Body):
    experiment_id: str | int | None = Field(
        None, description="Experiment to start the run in; default: the 'Default' experiment."
    )
    name: str | None = None
    tags: dict[str, Scalar] = Field(default_factory=dict)
    parent_run_id: str | None = None
    start_time: int | None = Field(None, description="Epoch milliseconds; default: now.")


class EndRun(_Body):
    status: str = "FINISHED"
    end_time: int | None = Field(None, description="Epoch milliseconds; default: now.")


class RenameRun(_Body):
    name: str


class MetricPoint(_Body):
    key: str
    value: MetricValue
    step: int | None = 0
    timestamp: int | None = Field(None, description="Epoch milliseconds; default: now.")


class MetricColumns(_Body):
    """Metric points as parallel columns: the compact form the SDK sends (no per-point
    objects to build or parse). Point ``i`` is ``(keys[i], values[i], steps[i],
    timestamps[i])``."""

    keys: list[str]
    values: list[MetricValue]
    steps: list[int]
    timestamps: list[int]

    @model_validator(mode="after")
    def _same_length(self) -> MetricColumns:
        n = len(self.keys)
        if not len(self.values) == len(self.steps) == len(self.timestamps) == n:
            raise ValueError(
                "keys, values, steps and timestamps must have the same length; got "
                f"{n}, {len(self.values)}, {len(self.steps)}, {len(self.timestamps)}"
            )
        return self


class LogBatch(_Body):
    metrics: list[MetricPoint] = Field(default_factory=list)
    metric_columns: MetricColumns | None = Field(
        None, description="More points in column form; logged after `metrics`."
    )
    params: dict[str, Scalar] = Field(default_factory=dict)
    tags: dict[str, Scalar] = Field(default_factory=dict)


class DatasetInputBody(_Body):
    name: str
    digest: str
    context: str
    num_rows: int | None = None
    # "schema" would shadow a BaseModel attribute; the JSON field is still called "schema".
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    source: str | None = None

    def as_mapping(self) -> dict[str, Any]:
        """The input as the service takes it (JSON field names)."""
        return self.model_dump(by_alias=True)


class LogInputs(_Body):
    inputs: list[DatasetInputBody]


class SearchRuns(_Body):
    experiment_ids: list[str | int] = Field(default_factory=list)
    filter: str | None = Field(
        None, description="e.g. \"metrics.auc > 0.9 and (params.model = 'rf' or tags.team = 'a')\""
    )
    order_by: list[str] = Field(default_factory=list, description='e.g. ["metrics.auc DESC"]')
    stage: str = "active"
    max_results: int | None = None
    page_token: str | None = None


# -- the error envelope in the OpenAPI spec (see dockyard.server.errors) --------------------------


class _ErrorFields(BaseModel):
    code: str = Field(description="Stable error code, e.g. not_found, invalid_input, conflict.")
    message: str = Field(description="What was wrong and how to fix it.")
    details: dict[str, Any] = Field(description="Machine-readable extras ({} when none).")


class ErrorEnvelope(BaseModel):
    """The body of every error answer."""

    error: _ErrorFields


#: ``responses=`` for the routers: every 4xx and 5xx answer is the envelope. (Declaring the
#: ranges also replaces FastAPI's default 422 schema, which is not what the API sends.)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorEnvelope, "description": "The request was refused: see error.code"},
    "5XX": {"model": ErrorEnvelope, "description": "Server-side failure (error id in details)"},
}
