"""Domain objects of the model registry: registered models, versions, aliases, verdicts.

Frozen dataclasses like :mod:`dockyard.core.entities`: ``to_dict`` gives the JSON form and
``from_dict`` reads it back, so local and remote callers get equal objects.

Lifecycle of a model version (:data:`TRANSITIONS`)::

    candidate -> approved | rejected
    approved  -> production | deprecated
    production -> deprecated
    deprecated -> production | retired      (re-promoting a deprecated version = rollback)
    rejected, retired: terminal

``RegistryService.retire`` may also retire a candidate or approved version directly (never a
production one: deprecate it first); that path is recorded in the status history like any other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

CANDIDATE = "candidate"
APPROVED = "approved"
PRODUCTION = "production"
DEPRECATED = "deprecated"
RETIRED = "retired"
REJECTED = "rejected"

#: Every status, in lifecycle order.
STATUSES: tuple[str, ...] = (CANDIDATE, APPROVED, PRODUCTION, DEPRECATED, RETIRED, REJECTED)

#: Allowed moves of ``RegistryService.transition``: status -> the statuses it may go to.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    CANDIDATE: (APPROVED, REJECTED),
    APPROVED: (PRODUCTION, DEPRECATED),
    PRODUCTION: (DEPRECATED,),
    DEPRECATED: (PRODUCTION, RETIRED),
    RETIRED: (),
    REJECTED: (),
}

#: Statuses a version never leaves; such a version cannot be aliased or deployed.
TERMINAL_STATUSES: frozenset[str] = frozenset({RETIRED, REJECTED})

#: Statuses ``RegistryService.retire`` accepts directly (production must be deprecated first).
RETIRABLE_FROM: tuple[str, ...] = (CANDIDATE, APPROVED, DEPRECATED)


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class RegisteredModel(_Dict):
    name: str
    description: str
    owner: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)
    #: alias -> version number
    aliases: dict[str, int] = field(default_factory=dict)
    #: highest version number (any status), None before the first version
    latest_version: int | None = None
    #: the approval policy: promotion to production needs a four-eyes approval
    #: (``RegistryService.set_approval_policy``)
    require_approval: bool = False


@dataclass(frozen=True)
class ModelVersion(_Dict):
    name: str
    version: int
    status: str
    #: ``runs:/<run_id>/<path>``, ``models:/<name>/<version>`` (a copy) or ``package:<digest>``
    source: str
    run_id: str | None
    package_digest: str
    flavor: str
    task: str | None
    signature: dict[str, Any]
    trusted_pickle: bool
    #: every file of the package, manifest.json included: path -> {"sha256", "size"}
    files: dict[str, dict[str, Any]]
    #: the source run's input datasets: [{"name", "digest", "context"}]
    datasets: list[dict[str, Any]]
    #: {"git_commit": str, "git_dirty": bool} when the run recorded them, else {}
    code: dict[str, Any]
    #: the source run's latest metrics at registration
    metrics: dict[str, float]
    description: str
    created_by: str
    creation_time: int
    last_update_time: int
    status_reason: str | None = None
    replacement_version: int | None = None
    aliases: list[str] = field(default_factory=list)
    #: the latest validation verdict (a ValidationResult's dict), or None
    validation: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class AliasEvent(_Dict):
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    time: int


@dataclass(frozen=True)
class StatusEvent(_Dict):
    name: str
    version: int
    #: None for the creation of the version
    from_status: str | None
    to_status: str
    actor: str
    time: int
    reason: str | None = None


#: The actions of the approval workflow (``RegistryService.request_approval`` etc.).
APPROVAL_REQUEST = "request"
APPROVAL_APPROVE = "approve"
APPROVAL_REJECT = "reject"
APPROVAL_ACTIONS: tuple[str, ...] = (APPROVAL_REQUEST, APPROVAL_APPROVE, APPROVAL_REJECT)


@dataclass(frozen=True)
class Approval(_Dict):
    """One step of a version's approval: a request, an approval or a rejection.

    ``package_digest`` is the version's package digest when the step was taken: an approval
    only counts while it equals the version's. ``requester`` is the user whose request an
    approval or rejection answered (the requester itself on a request).
    """

    id: int
    name: str
    version: int
    action: str
    actor: str
    requester: str | None
    comment: str
    package_digest: str
    time: int


@dataclass(frozen=True)
class ValidationResult(_Dict):
    id: int
    name: str
    version: int
    against_version: int | None
    passed: bool
    #: [{"requirement", "metric", "op", "threshold", "candidate", "champion", "passed", "note"}]
    checks: list[dict[str, Any]]
    #: {"candidate": {...}, "champion": {...} | None}
    metrics: dict[str, Any]
    data_digest: str
    num_rows: int
    actor: str
    time: int
