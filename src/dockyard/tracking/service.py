"""Tracking use cases: experiments, runs, params, metrics, tags, inputs, artifacts.

The one place where tracking rules live. The SDK (local mode), the REST server and the CLI all
call :class:`TrackingService`; it takes a store, an artifact store and the acting principal,
validates plain values, runs each change in one transaction together with its audit event, and
returns domain objects.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.artifacts import ArtifactStore
from dockyard.artifacts.paths import (
    iter_local_folder,
    safe_local_destination,
    safe_prefix,
    safe_relpath,
)
from dockyard.core import paging
from dockyard.core.entities import (
    ArtifactFile,
    AuditEvent,
    AuditQuery,
    AuditVerification,
    DatasetInput,
    Experiment,
    Metric,
    Page,
    Run,
    RunStatus,
)
from dockyard.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from dockyard.governance.audit import Actor, now_ms, record_event, verify_audit_log
from dockyard.governance.permissions import (
    AUDIT_READ,
    EXPERIMENT_READ,
    EXPERIMENT_WRITE,
    Authorizer,
    enforced,
)
from dockyard.store.base import Store, Unit
from dockyard.tracking import _validation as v
from dockyard.tracking._shortcuts import BatchShortcuts

DEFAULT_EXPERIMENT = "Default"
MAX_BATCH_METRICS = 10_000
MAX_BATCH_PARAMS = 1_000
MAX_BATCH_TAGS = 1_000
_STAGES = ("active", "deleted", "all")


def _check_stage(stage: str) -> str:
    if stage not in _STAGES:
        raise InvalidInput(f"stage must be one of {', '.join(_STAGES)}; got {stage!r}")
    return stage


#: The permission every public method needs (deny by default: :func:`enforced` refuses to build
#: the class if a public method is missing here). Experiments, runs and everything logged to a
#: run are checked on the experiment they belong to; each method also checks its exact resource.
TRACKING_PERMISSIONS: dict[str, str] = {
    "create_experiment": EXPERIMENT_WRITE,
    "get_experiment": EXPERIMENT_READ,
    "get_experiment_by_name": EXPERIMENT_READ,
    "resolve_experiment": EXPERIMENT_READ,
    "get_or_create_experiment": EXPERIMENT_READ,
    "list_experiments": EXPERIMENT_READ,
    "rename_experiment": EXPERIMENT_WRITE,
    "delete_experiment": EXPERIMENT_WRITE,
    "restore_experiment": EXPERIMENT_WRITE,
    "set_experiment_tag": EXPERIMENT_WRITE,
    "start_run": EXPERIMENT_WRITE,
    "get_run": EXPERIMENT_READ,
    "end_run": EXPERIMENT_WRITE,
    "rename_run": EXPERIMENT_WRITE,
    "delete_run": EXPERIMENT_WRITE,
    "restore_run": EXPERIMENT_WRITE,
    "search_runs": EXPERIMENT_READ,
    "log_batch": EXPERIMENT_WRITE,
    "log_param": EXPERIMENT_WRITE,
    "log_params": EXPERIMENT_WRITE,
    "log_metric": EXPERIMENT_WRITE,
    "set_tag": EXPERIMENT_WRITE,
    "set_tags": EXPERIMENT_WRITE,
    "delete_tag": EXPERIMENT_WRITE,
    "get_metric_history": EXPERIMENT_READ,
    "log_inputs": EXPERIMENT_WRITE,
    "log_artifact": EXPERIMENT_WRITE,
    "log_artifacts": EXPERIMENT_WRITE,
    "upload_artifact": EXPERIMENT_WRITE,
    "list_artifacts": EXPERIMENT_READ,
    "open_artifact": EXPERIMENT_READ,
    "download_artifacts": EXPERIMENT_READ,
    "list_audit_events": AUDIT_READ,
    "verify_audit_log": AUDIT_READ,
}


@enforced(TRACKING_PERMISSIONS)
class TrackingService(BatchShortcuts):
    """Tracking operations on behalf of ``actor``."""

    def __init__(self, store: Store, artifacts: ArtifactStore, actor: Actor) -> None:
        self.store = store
        self.artifacts = artifacts
        self.actor = actor
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)

    def _require_run(self, permission: str, run_id: str) -> None:
        """``permission`` on the experiment of ``run_id`` (no lookup with a global grant)."""
        if self.authz.allows(permission):
            return
        exp_id = self.store.read(lambda u: u.run_experiment_id(run_id))
        if exp_id is None:
            raise NotFound(f"run {run_id} does not exist", run_id=run_id)
        self.authz.require(permission, exp_id)

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, Any] | None = None) -> Experiment:
        self.authz.require(EXPERIMENT_WRITE)
        v.check_name("experiment", name)
        clean_tags = {v.check_key("tag", k): v.tag_value(k, val) for k, val in (tags or {}).items()}

        def fn(u: Unit) -> Experiment:
            exp = u.create_experiment(name, self.artifacts.root_uri, clean_tags, now_ms())
            record_event(
                u, self.actor, "experiment.create", "experiment", exp.experiment_id, name=name
            )
            return exp

        return self.store.write(fn)

    def get_experiment(self, experiment_id: str) -> Experiment:
        eid = v.check_experiment_id(experiment_id)
        exp = self.store.read(lambda u: u.get_experiment(eid))
        if exp is None:
            raise NotFound(f"experiment {experiment_id} does not exist", experiment_id=eid)
        self.authz.require(EXPERIMENT_READ, exp.experiment_id)
        return exp

    def get_experiment_by_name(self, name: str) -> Experiment:
        v.check_name("experiment", name)
        exp = self.store.read(lambda u: u.get_experiment_by_name(name))
        if exp is None:
            raise NotFound(f"experiment {name!r} does not exist", name=name)
        self.authz.require(EXPERIMENT_READ, exp.experiment_id)
        return exp

    def resolve_experiment(self, ref: str) -> Experiment:
        """An experiment by id (all digits) or by name."""
        if isinstance(ref, str) and ref.isdigit():
            try:
                return self.get_experiment(ref)
            except NotFound:
                pass
        return self.get_experiment_by_name(str(ref))

    def get_or_create_experiment(self, name: str) -> Experiment:
        v.check_name("experiment", name)
        exp = self.store.read(lambda u: u.get_experiment_by_name(name))
        if exp is not None:
            self.authz.require(EXPERIMENT_READ, exp.experiment_id)
            if exp.lifecycle_stage != "active":
                raise Conflict(
                    f"experiment {name!r} is deleted; restore it with "
                    f"`dockyard experiments restore {exp.experiment_id}` or pick another name"
                )
            return exp
        try:
            return self.create_experiment(name)
        except AlreadyExists:
            # Another process created it between our read and our insert.
            exp = self.store.read(lambda u: u.get_experiment_by_name(name))
            if exp is None:
                raise
            return exp

    def list_experiments(
        self, stage: str = "active", max_results: int | None = None, page_token: str | None = None
    ) -> Page[Experiment]:
        _check_stage(stage)
        limit = paging.check_page_size(max_results)
        q = paging.fingerprint("experiments", stage)
        offset = paging.decode_token(page_token, q)
        items = self.store.read(lambda u: u.list_experiments(stage, limit + 1, offset))
        token = paging.encode_token(offset + limit, q) if len(items) > limit else None
        items = items[:limit]
        if not self.authz.allows(EXPERIMENT_READ):  # per-experiment grants: only those
            items = [e for e in items if self.authz.allows(EXPERIMENT_READ, e.experiment_id)]
        return Page(items, token)

    def rename_experiment(self, experiment_id: str, new_name: str) -> Experiment:
        v.check_name("experiment", new_name)
        exp = self.get_experiment(experiment_id)
        self.authz.require(EXPERIMENT_WRITE, exp.experiment_id)

        def fn(u: Unit) -> None:
            u.update_experiment(exp.experiment_id, now_ms(), name=new_name)
            record_event(
                u,
                self.actor,
                "experiment.rename",
                "experiment",
                exp.experiment_id,
                old_name=exp.name,
                new_name=new_name,
            )

        self.store.write(fn)
        return self.get_experiment(exp.experiment_id)

    def _set_experiment_stage(self, experiment_id: str, stage: str, action: str) -> Experiment:
        exp = self.get_experiment(experiment_id)
        self.authz.require(EXPERIMENT_WRITE, exp.experiment_id)
        if exp.lifecycle_stage == stage:
            raise Conflict(f"experiment {exp.experiment_id} ({exp.name!r}) is already {stage}")

        def fn(u: Unit) -> None:
            u.update_experiment(exp.experiment_id, now_ms(), lifecycle_stage=stage)
            record_event(u, self.actor, action, "experiment", exp.experiment_id, name=exp.name)

        self.store.write(fn)
        return self.get_experiment(exp.experiment_id)

    def delete_experiment(self, experiment_id: str) -> Experiment:
        """Soft delete: the experiment and its runs stay stored and can be restored."""
        return self._set_experiment_stage(experiment_id, "deleted", "experiment.delete")

    def restore_experiment(self, experiment_id: str) -> Experiment:
        return self._set_experiment_stage(experiment_id, "active", "experiment.restore")

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        exp = self.get_experiment(experiment_id)
        self.authz.require(EXPERIMENT_WRITE, exp.experiment_id)
        v.check_key("tag", key)
        val = v.tag_value(key, value)

        def fn(u: Unit) -> None:
            u.set_experiment_tags(exp.experiment_id, {key: val})
            record_event(
                u, self.actor, "experiment.set_tag", "experiment", exp.experiment_id, key=key
            )

        self.store.write(fn)

    # -- runs --------------------------------------------------------------------------------

    def start_run(
        self,
        experiment_id: str | None = None,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        # Validate everything before the Default experiment may be created.
        if name is not None:
            v.check_name("run", name)
        clean_tags = {v.check_key("tag", k): v.tag_value(k, val) for k, val in (tags or {}).items()}
        if parent_run_id is not None:
            v.check_run_id(parent_run_id)
        started = now_ms() if start_time is None else v.integer("start_time", start_time)
        if experiment_id is None:
            exp = self.get_or_create_experiment(DEFAULT_EXPERIMENT)
        else:
            exp = self.get_experiment(experiment_id)
        self.authz.require(EXPERIMENT_WRITE, exp.experiment_id)
        if exp.lifecycle_stage != "active":
            raise Conflict(f"experiment {exp.experiment_id} ({exp.name!r}) is deleted")
        run_id = uuid.uuid4().hex
        run_name = name or f"run-{run_id[:8]}"

        def fn(u: Unit) -> Run:
            if parent_run_id is not None and u.run_exists(parent_run_id) is None:
                raise NotFound(f"parent run {parent_run_id} does not exist")
            u.insert_run(
                run_id=run_id,
                experiment_id=exp.experiment_id,
                name=run_name,
                start_time=started,
                user=self.actor.name,
                parent_run_id=parent_run_id,
            )
            if clean_tags:
                u.set_tags(run_id, clean_tags)
            record_event(
                u,
                self.actor,
                "run.create",
                "run",
                run_id,
                experiment_id=exp.experiment_id,
                name=run_name,
            )
            run = u.get_run(run_id)
            assert run is not None
            return run

        return self.store.write(fn)

    def get_run(self, run_id: str) -> Run:
        v.check_run_id(run_id)
        run = self.store.read(lambda u: u.get_run(run_id))
        if run is None:
            raise NotFound(f"run {run_id} does not exist", run_id=run_id)
        self.authz.require(EXPERIMENT_READ, run.experiment_id)
        return run

    def _require_active(self, u: Unit, run_id: str) -> str:
        """The run's status; NotFound or Conflict when it cannot take writes."""
        state = u.run_exists(run_id)
        if state is None:
            raise NotFound(f"run {run_id} does not exist", run_id=run_id)
        status, stage = state
        if stage != "active":
            raise Conflict(f"run {run_id} is deleted; restore it before logging to it")
        return status

    def end_run(
        self, run_id: str, status: str | RunStatus = RunStatus.FINISHED, end_time: int | None = None
    ) -> Run:
        """End a run (also one left RUNNING by a crashed process)."""
        v.check_run_id(run_id)
        self._require_run(EXPERIMENT_WRITE, run_id)
        try:
            new_status = RunStatus(str(status).upper())
        except ValueError:
            raise InvalidInput(
                f"run status must be one of {', '.join(s.value for s in RunStatus)}; got {status!r}"
            ) from None
        if not new_status.is_terminal:
            raise InvalidInput("end_run needs a terminal status: FINISHED, FAILED or KILLED")
        ended = now_ms() if end_time is None else v.integer("end_time", end_time)

        def fn(u: Unit) -> Run:
            current = self._require_active(u, run_id)
            if current != RunStatus.RUNNING.value:
                raise Conflict(f"run {run_id} has already ended with status {current}")
            u.update_run(run_id, status=new_status, end_time=ended)
            record_event(u, self.actor, "run.end", "run", run_id, status=new_status.value)
            run = u.get_run(run_id)
            assert run is not None
            return run

        return self.store.write(fn)

    def rename_run(self, run_id: str, name: str) -> Run:
        v.check_run_id(run_id)
        v.check_name("run", name)
        self._require_run(EXPERIMENT_WRITE, run_id)

        def fn(u: Unit) -> Run:
            self._require_active(u, run_id)
            u.update_run(run_id, name=name)
            record_event(u, self.actor, "run.rename", "run", run_id, name=name)
            run = u.get_run(run_id)
            assert run is not None
            return run

        return self.store.write(fn)

    def _set_run_stage(self, run_id: str, stage: str, action: str) -> Run:
        run = self.get_run(run_id)
        self.authz.require(EXPERIMENT_WRITE, run.experiment_id)
        if run.lifecycle_stage == stage:
            raise Conflict(f"run {run_id} is already {stage}")

        def fn(u: Unit) -> None:
            u.update_run(run_id, lifecycle_stage=stage)
            record_event(u, self.actor, action, "run", run_id)

        self.store.write(fn)
        return self.get_run(run_id)

    def delete_run(self, run_id: str) -> Run:
        return self._set_run_stage(run_id, "deleted", "run.delete")

    def restore_run(self, run_id: str) -> Run:
        return self._set_run_stage(run_id, "active", "run.restore")

    def search_runs(
        self,
        experiment_ids: Sequence[str] = (),
        filter: str | None = None,
        order_by: Sequence[str] = (),
        stage: str = "active",
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Run]:
        """Runs matching a filter such as
        ``metrics.auc > 0.9 and (params.model = 'rf' or tags.team = 'risk')``."""
        from dockyard.store._search_sql import compile_filter
        from dockyard.tracking.search import parse_filter, parse_order_by

        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        ids = [v.check_experiment_id(e) for e in experiment_ids]
        for eid in ids:
            self.authz.require(EXPERIMENT_READ, eid)
        _check_stage(stage)
        limit = paging.check_page_size(max_results)
        node = parse_filter(filter)
        order = parse_order_by(list(order_by))
        q = paging.fingerprint("runs", ids, filter, list(order_by), stage)
        offset = paging.decode_token(page_token, q)
        where = None if node is None else compile_filter(node)
        items = self.store.read(
            lambda u: u.search_runs(ids, where, order, stage, limit + 1, offset)
        )
        token = paging.encode_token(offset + limit, q) if len(items) > limit else None
        items = items[:limit]
        if not ids and not self.authz.allows(EXPERIMENT_READ):
            items = [r for r in items if self.authz.allows(EXPERIMENT_READ, r.experiment_id)]
        return Page(items, token)

    # -- params, metrics, tags, inputs ------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] | Iterable[Mapping[str, Any]] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Log metrics, params and tags in one transaction with one audit event."""
        v.check_run_id(run_id)
        self._require_run(EXPERIMENT_WRITE, run_id)
        points = self._clean_metrics(metrics)
        clean_params = {
            v.check_key("param", k): v.param_value(k, val) for k, val in (params or {}).items()
        }
        clean_tags = {v.check_key("tag", k): v.tag_value(k, val) for k, val in (tags or {}).items()}
        if len(clean_params) > MAX_BATCH_PARAMS or len(clean_tags) > MAX_BATCH_TAGS:
            raise InvalidInput(
                f"a batch takes at most {MAX_BATCH_PARAMS} params and {MAX_BATCH_TAGS} tags"
            )
        if not (points or clean_params or clean_tags):
            return

        def fn(u: Unit) -> None:
            self._require_active(u, run_id)
            written: list[str] = []
            if clean_params:
                written = u.log_params(run_id, clean_params)
            if clean_tags:
                u.set_tags(run_id, clean_tags)
            if points:
                u.log_metrics(run_id, points)
            details: dict[str, Any] = {}
            if points:
                details["metrics"] = len(points)
                details["metric_keys"] = sorted({p.key for p in points})[:50]
            if written:
                details["params"] = written
            if clean_tags:
                details["tags"] = sorted(clean_tags)
            if details:
                record_event(u, self.actor, "run.log", "run", run_id, **details)

        self.store.write(fn)

    def _clean_metrics(self, metrics: Iterable[Metric | Mapping[str, Any]]) -> list[Metric]:
        batch = (
            metrics
            if isinstance(metrics, list | tuple)
            else list(islice(metrics, MAX_BATCH_METRICS + 1))
        )
        if 0 < len(batch) <= MAX_BATCH_METRICS and set(map(type, batch)) == {Metric}:
            # Fast path for points the SDK built (floats and ints already): check each column
            # in one pass, and each distinct key once, in batch order so the first bad key is
            # the one named. Anything else takes the point-by-point path below.
            keys, values, timestamps, steps = zip(*batch, strict=True)
            if set(map(type, values)) == {float} and set(map(type, timestamps)) == set(
                map(type, steps)
            ) == {int}:
                for key in dict.fromkeys(keys):
                    v.check_key("metric", key)
                if -(2**63) <= min(timestamps) and max(timestamps) < 2**63:
                    if -(2**63) <= min(steps) and max(steps) < 2**63:
                        return list(batch)
        points: list[Metric] = []
        default_ts = None
        for m in batch:
            if (
                type(m) is Metric
                and type(m.value) is float
                and type(m.timestamp) is int
                and type(m.step) is int
            ):
                # Fast path for points the SDK built: only the key still needs a look.
                v.check_key("metric", m.key)
                points.append(m)
            elif isinstance(m, Metric | Mapping):
                if isinstance(m, Metric):
                    key, value, ts, step = m.key, m.value, m.timestamp, m.step
                else:
                    if "key" not in m or "value" not in m:
                        raise InvalidInput(
                            f"a metric point needs 'key' and 'value'; got {dict(m)!r}"
                        )
                    key, value = m["key"], m["value"]
                    ts, step = m.get("timestamp"), m.get("step", 0)
                v.check_key("metric", key)
                if ts is None:
                    default_ts = default_ts or now_ms()
                    ts = default_ts
                if step is None:
                    step = 0
                points.append(
                    Metric(
                        key,
                        value if type(value) is float else v.metric_value(key, value),
                        ts if type(ts) is int else v.integer("metric timestamp", ts),
                        step if type(step) is int else v.integer("metric step", step),
                    )
                )
            else:
                raise InvalidInput(f"a metric point must be a Metric or a mapping, got {m!r}")
            if len(points) > MAX_BATCH_METRICS:
                raise InvalidInput(f"a batch takes at most {MAX_BATCH_METRICS} metric points")
        for p in points:
            if not -(2**63) <= p.timestamp < 2**63 or not -(2**63) <= p.step < 2**63:
                raise InvalidInput(f"metric {p.key!r} step or timestamp does not fit in 64 bits")
        return points

    def delete_tag(self, run_id: str, key: str) -> None:
        v.check_run_id(run_id)
        self._require_run(EXPERIMENT_WRITE, run_id)
        v.check_key("tag", key)

        def fn(u: Unit) -> None:
            self._require_active(u, run_id)
            if not u.delete_tag(run_id, key):
                raise NotFound(f"run {run_id} has no tag {key!r}")
            record_event(u, self.actor, "run.delete_tag", "run", run_id, key=key)

        self.store.write(fn)

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Metric]:
        v.check_run_id(run_id)
        v.check_key("metric", key)
        self._require_run(EXPERIMENT_READ, run_id)
        limit = paging.check_page_size(max_results, default=paging.MAX_PAGE_SIZE)
        q = paging.fingerprint("history", run_id, key)
        offset = paging.decode_token(page_token, q)

        def fn(u: Unit) -> list[Metric]:
            points = u.metric_history(run_id, key, limit + 1, offset)
            # A point implies its run (a foreign key): look the run up only for an empty page.
            if not points and u.run_exists(run_id) is None:
                raise NotFound(f"run {run_id} does not exist", run_id=run_id)
            return points

        items = self.store.read(fn)
        token = paging.encode_token(offset + limit, q) if len(items) > limit else None
        return Page(items[:limit], token)

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput | Mapping[str, Any]]) -> None:
        v.check_run_id(run_id)
        self._require_run(EXPERIMENT_WRITE, run_id)
        clean: list[DatasetInput] = []
        for d in inputs:
            if isinstance(d, Mapping):
                try:
                    d = DatasetInput.from_dict(dict(d))
                except TypeError as exc:
                    raise InvalidInput(f"a dataset input is malformed: {exc}") from None
            v.check_name("dataset", d.name)
            if not isinstance(d.digest, str) or not d.digest or len(d.digest) > 128:
                raise InvalidInput(f"dataset {d.name!r} needs a digest of at most 128 characters")
            v.check_text(f"dataset {d.name!r} digest", d.digest, 128)
            if d.source is not None:
                if not isinstance(d.source, str):
                    raise InvalidInput(f"dataset {d.name!r} source must be a string")
                v.check_text(f"dataset {d.name!r} source", d.source, 1024)
            v.check_key("dataset context", d.context)
            if d.num_rows is not None:
                v.integer("dataset num_rows", d.num_rows)
            if d.schema is not None and not isinstance(d.schema, dict):
                raise InvalidInput(f"dataset {d.name!r} schema must be an object")
            clean.append(d)
        if not clean:
            return

        def fn(u: Unit) -> None:
            self._require_active(u, run_id)
            u.log_inputs(run_id, clean)
            record_event(
                u,
                self.actor,
                "run.log_inputs",
                "run",
                run_id,
                datasets=[
                    {"name": d.name, "digest": d.digest, "context": d.context} for d in clean
                ],
            )

        self.store.write(fn)

    # -- artifacts ---------------------------------------------------------------------------

    @staticmethod
    def _check_no_clash(u: Unit, run_id: str, path: str) -> None:
        """A path is a file or a folder, never both: refuse ``a/b`` beside a file ``a``."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if u.get_artifact(run_id, parent) is not None:
                raise Conflict(
                    f"cannot store {path!r}: run {run_id} has a file at {parent!r}, "
                    "so it cannot also be a folder"
                )
        if any(p != path for p, _d, _s in u.list_artifacts(run_id, path)):
            raise Conflict(f"cannot store a file at {path!r}: run {run_id} has a folder there")

    def _record_blobs(self, run_id: str, entries: list[tuple[str, str, int]]) -> None:
        def fn(u: Unit) -> None:
            self._require_active(u, run_id)
            for path, _digest, _size in entries:
                self._check_no_clash(u, run_id, path)
            now = now_ms()
            for path, digest, size in entries:
                u.record_artifact(run_id, path, digest, size, now)
            record_event(
                u,
                self.actor,
                "artifact.write",
                "run",
                run_id,
                files=[{"path": p, "digest": d, "size": s} for p, d, s in entries[:100]],
                count=len(entries),
            )

        self.store.write(fn)

    def _check_writable(self, run_id: str) -> None:
        v.check_run_id(run_id)
        self._require_run(EXPERIMENT_WRITE, run_id)
        self.store.read(lambda u: self._require_active(u, run_id))

    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> ArtifactFile:
        """Store one local file under ``artifact_path/<file name>`` in the run's artifacts."""
        self._check_writable(run_id)
        src = Path(local_path)
        if not src.is_file():
            raise InvalidInput(f"{local_path} is not a file")
        dest = safe_relpath(f"{artifact_path}/{src.name}" if artifact_path else src.name)
        blob = self.artifacts.put_file(src)
        self._record_blobs(run_id, [(dest, blob.digest, blob.size)])
        return ArtifactFile(path=dest, is_dir=False, size=blob.size, digest=blob.digest)

    def log_artifacts(
        self, run_id: str, local_dir: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactFile]:
        """Store every file under a local folder, recursively."""
        self._check_writable(run_id)
        folder = Path(local_dir)
        if not folder.is_dir():
            raise InvalidInput(f"{local_dir} is not a folder")
        prefix = safe_prefix(artifact_path or "")
        entries: list[tuple[str, str, int]] = []
        files = list(iter_local_folder(folder))  # refuses escaping symlinks before any upload
        for rel, path in files:
            dest = safe_relpath(f"{prefix}/{rel}" if prefix else rel)
            blob = self.artifacts.put_file(path)
            entries.append((dest, blob.digest, blob.size))
        if entries:
            self._record_blobs(run_id, entries)
        return [ArtifactFile(path=p, is_dir=False, size=s, digest=d) for p, d, s in entries]

    def upload_artifact(
        self,
        run_id: str,
        path: str,
        stream: Iterable[bytes] | BinaryIO,
        max_bytes: int | None = None,
    ) -> ArtifactFile:
        """Store a streamed file (the server's upload route)."""
        dest = safe_relpath(path)
        self._check_writable(run_id)
        blob = self.artifacts.put_stream(stream, max_bytes=max_bytes)
        self._record_blobs(run_id, [(dest, blob.digest, blob.size)])
        return ArtifactFile(path=dest, is_dir=False, size=blob.size, digest=blob.digest)

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactFile]:
        """The direct children (files and folders) of ``path`` in the run's artifact tree."""
        prefix, rows = self._artifact_rows(run_id, path)
        if prefix and len(rows) == 1 and rows[0][0] == prefix:
            p, d, s = rows[0]
            return [ArtifactFile(path=p, is_dir=False, size=s, digest=d)]
        out: dict[str, ArtifactFile] = {}
        base = f"{prefix}/" if prefix else ""
        for p, d, s in rows:
            if p == prefix:
                continue
            head, _, rest = p[len(base) :].partition("/")
            child = base + head
            if rest:
                out.setdefault(child, ArtifactFile(path=child, is_dir=True))
            else:
                out[child] = ArtifactFile(path=child, is_dir=False, size=s, digest=d)
        if prefix and not out:
            raise NotFound(f"run {run_id} has no artifact at {prefix!r}")
        return sorted(out.values(), key=lambda a: a.path)

    def _artifact_rows(
        self, run_id: str, path: str, *, audit: bool = False
    ) -> tuple[str, list[tuple[str, str, int]]]:
        """The checked prefix and (path, digest, size) of every file at or under it. With
        ``audit`` there must be at least one, and an ``artifact.download`` event records them
        in the same transaction as the lookup."""
        v.check_run_id(run_id)
        self._require_run(EXPERIMENT_READ, run_id)
        prefix = safe_prefix(path)

        def fn(u: Unit) -> list[tuple[str, str, int]]:
            if u.run_exists(run_id) is None:
                raise NotFound(f"run {run_id} does not exist", run_id=run_id)
            rows = u.list_artifacts(run_id, prefix)
            if audit:
                if not rows:
                    raise NotFound(f"run {run_id} has no artifact at {prefix!r}")
                record_event(
                    u,
                    self.actor,
                    "artifact.download",
                    "run",
                    run_id,
                    path=prefix,
                    files=len(rows),
                    size=sum(r[2] for r in rows),
                )
            return rows

        return prefix, (self.store.write(fn) if audit else self.store.read(fn))

    def open_artifact(self, run_id: str, path: str) -> tuple[ArtifactFile, Iterator[bytes]]:
        """One file's record and a chunk iterator that verifies its hash as it ends."""
        rel = safe_relpath(path)
        v.check_run_id(run_id)
        self._require_run(EXPERIMENT_READ, run_id)

        def fn(u: Unit) -> tuple[str, int]:
            if u.run_exists(run_id) is None:
                raise NotFound(f"run {run_id} does not exist", run_id=run_id)
            found = u.get_artifact(run_id, rel)
            if found is None:
                raise NotFound(f"run {run_id} has no artifact file {rel!r}")
            # A read of something sensitive: audited, in the same transaction as the lookup.
            record_event(
                u,
                self.actor,
                "artifact.download",
                "run",
                run_id,
                path=rel,
                digest=found[0],
                size=found[1],
            )
            return found

        digest, size = self.store.write(fn)
        return (
            ArtifactFile(path=rel, is_dir=False, size=size, digest=digest),
            self.artifacts.open_blob(digest),
        )

    def download_artifacts(self, run_id: str, path: str, dest_dir: str | Path) -> Path:
        """Copy a file or folder of the run's artifacts into ``dest_dir``; returns its path.
        One ``artifact.download`` audit event records the call (path, files, bytes)."""
        prefix, rows = self._artifact_rows(run_id, path, audit=True)
        dest_root = Path(dest_dir)
        dest_root.mkdir(parents=True, exist_ok=True)
        for p, digest, _size in rows:
            target = safe_local_destination(dest_root, p)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.artifacts.download_blob(digest, target)
        return safe_local_destination(dest_root, prefix) if prefix else dest_root

    # -- audit -------------------------------------------------------------------------------

    def list_audit_events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        offset: int = 0,
        after: int | None = None,
    ) -> list[AuditEvent]:
        """Audit events in the order they were written, filtered; ``after`` (an event id)
        starts after that event, the cheap way to page through a long log."""
        self.authz.require(AUDIT_READ)
        for kind, text in (
            ("actor", actor),
            ("action", action),
            ("resource_type", resource_type),
            ("resource_id", resource_id),
        ):
            if text is not None:
                if not isinstance(text, str):
                    raise InvalidInput(f"audit filter {kind} must be a string, got {text!r}")
                v.check_text(f"audit filter {kind}", text, 256)
        query = AuditQuery(
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            since=None if since is None else v.integer("since", since),
            until=None if until is None else v.integer("until", until),
            after=None if after is None else v.integer("after", after),
        )
        limit = paging.check_page_size(limit)
        offset = v.integer("offset", offset)
        if offset < 0:
            raise InvalidInput(f"offset must be 0 or more, got {offset}")
        return self.store.read(lambda u: u.list_audit(query, limit, offset))

    def verify_audit_log(self) -> AuditVerification:
        """Check the audit log's hash chain end to end: ``ok`` with the number of events and
        the last hash, or the first broken link (the event id and what is wrong with it)."""
        self.authz.require(AUDIT_READ)
        return verify_audit_log(self.store)
