"""Domain objects: frozen dataclasses that every layer speaks.

The store turns its rows into these before they leave ``store/``; services, the server, the
CLI and the SDK pass them around; ``to_dict`` gives their JSON form and ``from_dict`` reads it
back (the remote SDK uses it, so local and remote callers get equal objects).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Self, TypeVar

T = TypeVar("T")


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


class LifecycleStage(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class Experiment(_Dict):
    experiment_id: str
    name: str
    lifecycle_stage: str
    artifact_location: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(**d)


class Metric(NamedTuple):
    """One metric point. A named tuple, not a dataclass: histories hold many thousands of
    points and a tuple is several times cheaper to build and to read."""

    key: str
    value: float
    timestamp: int
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "timestamp": self.timestamp,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metric:
        return cls(
            key=d["key"],
            value=float(d["value"]),
            timestamp=int(d["timestamp"]),
            step=int(d.get("step", 0)),
        )


@dataclass(frozen=True)
class DatasetInput(_Dict):
    name: str
    digest: str
    context: str
    num_rows: int | None = None
    schema: dict[str, Any] | None = None
    source: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(**d)


@dataclass(frozen=True)
class Run(_Dict):
    run_id: str
    experiment_id: str
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    user: str
    parent_run_id: str | None
    lifecycle_stage: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[DatasetInput] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        d = dict(d)
        d["status"] = RunStatus(d["status"])
        d["inputs"] = [DatasetInput.from_dict(i) for i in d.get("inputs", [])]
        return cls(**d)


@dataclass(frozen=True)
class ArtifactFile(_Dict):
    path: str
    is_dir: bool
    size: int | None = None
    digest: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(**d)


@dataclass(frozen=True)
class AuditEvent(_Dict):
    event_id: int
    time: int
    actor: str
    action: str
    resource_type: str
    resource_id: str
    details: dict[str, Any] = field(default_factory=dict)
    #: The hash chain: this event's sha256 and the previous event's (see governance.audit).
    prev_hash: str = ""
    hash: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(**d)


@dataclass(frozen=True)
class AuditVerification(_Dict):
    """What ``verify`` found: ``ok`` with the count and the last hash, or the first broken
    link (``broken_event_id``; ``problem`` is edited, deleted or reordered)."""

    ok: bool
    count: int
    message: str
    first_event_id: int | None = None
    last_event_id: int | None = None
    last_hash: str | None = None
    broken_event_id: int | None = None
    problem: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(**d)


@dataclass(frozen=True)
class AuditRetention(_Dict):
    """What one retention pass did: events older than ``cutoff`` (epoch ms) were deleted,
    ``checkpoint_hash`` being the hash of the newest of them (None when none were)."""

    deleted: int
    cutoff: int
    retention_days: int
    checkpoint_event_id: int | None
    checkpoint_hash: str | None
    event_id: int


@dataclass(frozen=True)
class AuditQuery:
    """Which audit events to list: every field that is set must match (time in ms, [since,
    until))."""

    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: int | None = None
    until: int | None = None
    #: Keyset paging: only events with a larger id.
    after: int | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; ``next_page_token`` is None on the last page."""

    items: list[T]
    next_page_token: str | None = None
