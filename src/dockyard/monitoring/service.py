"""Monitoring an endpoint: one window of its prediction log against the reference profile.

:class:`MonitorService` ties the pieces together. A run of a monitor over a window:

1. reads the endpoint's prediction log for the window (live rows: status 200, no shadows; the
   shadows count for performance only) with :func:`dockyard.serving.predlog.read_predictions`;
2. finds the **reference profile**: by default the profile of the training data of the model
   version that is the endpoint's primary (logged by ``log_input`` in the run the version was
   registered from, as the run artifact ``profiles/<digest>.json``); or the profile of a file
   given with ``reference`` (profiled once, the data is not kept). The training data is never
   reloaded;
3. compares the window feature by feature (:func:`dockyard.monitoring.drift.drift_report`; the
   features are the model signature's inputs the profile has, or the monitor's ``features``);
4. **prediction drift**: the model's outputs have no training-time reference, so the baseline
   is the primary version's first window of production traffic (the earliest ``window`` of its
   logged predictions). While the run's window *is* that first window there is nothing to
   compare and the prediction verdict is left out, with a note;
5. checks data quality (:func:`dockyard.monitoring.quality.data_quality`);
6. joins the labels that have arrived (:func:`dockyard.serving.labels.join_labels`) and
   computes performance per variant with the label coverage, an A/B significance verdict when
   two live variants served the window, and a confidence-based estimate (CBPE) for the rows
   still without a label, marked as an estimate;
7. stores the run (headline columns + the whole result as JSON), one time-series point per
   (variant, feature, metric), the events it raised (``drift.detected``,
   ``performance.degraded``, ``quality.issues``) and one pending webhook delivery per matching
   target, all in one transaction, plus a ``monitor.run`` audit event.

Windows with fewer than ``min_rows`` live rows are stored with status ``insufficient`` and no
verdicts (a drift test on a handful of rows is noise); windows without rows are ``no_data``.

Permissions: running and storing a monitor, and declaring one, need ``endpoint:deploy`` on the
endpoint (the deployer role runs production); reading runs, series, events and reports needs
``endpoint:read``. The scheduler (:class:`MonitorScheduler`) runs declared monitors on aligned
tumbling windows in the server, under a lease, claiming each monitor compare-and-set so two
replicas never evaluate a window twice.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dockyard.core.errors import Conflict, InvalidInput, NotFound
from dockyard.core.monitor_entities import EVENT_KINDS, Monitor, MonitoringEvent, MonitorRun
from dockyard.core.serving_entities import check_endpoint_name
from dockyard.core.wire import json_nulls
from dockyard.governance.audit import Actor, now_ms, record_event
from dockyard.governance.permissions import ENDPOINT_DEPLOY, ENDPOINT_READ, Authorizer, enforced

if TYPE_CHECKING:
    import pyarrow as pa

    from dockyard.artifacts import ArtifactStore
    from dockyard.backend import Backend
    from dockyard.core.serving_entities import Endpoint, ModelRef
    from dockyard.monitoring.profile import DatasetProfile
    from dockyard.store.sql import SqlStore, SqlUnit

__all__ = ["MonitorScheduler", "MonitorService", "MonitorSpec"]

log = logging.getLogger("dockyard.monitoring")

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_HOUR_MS = 3_600_000
#: How far back a count window (``--window 1000rows``) looks for its rows.
_MAX_LOOK_BACK_MS = 90 * 86_400_000
#: Most aligned windows one scheduler pass evaluates per monitor (it catches up over passes).
_MAX_CATCH_UP = 24
_PRED = "prediction"
#: The principal the scheduler acts as (audit events name it).
SCHEDULER = "monitor-scheduler"


# --------------------------------------------------------------------------- the spec


class PerformanceRule(BaseModel):
    """``performance.degraded`` when ``metric`` of a live variant falls below ``min`` (or
    rises above ``max``, for errors such as rmse) on a window with labels."""

    model_config = ConfigDict(extra="forbid")
    metric: str = "accuracy"
    min: float | None = None
    max: float | None = None
    #: fewer labeled rows than this: no verdict
    min_labeled: int = Field(default=50, ge=1)


class MonitorSpec(BaseModel):
    """What a monitor compares, against what, how often, and whom it tells."""

    model_config = ConfigDict(extra="forbid")
    #: tumbling window: "1h", "15m", "1d", or "1000rows"
    window: str = "1h"
    #: time between scheduled runs; default: the window
    schedule: str | None = None
    #: features to compare; default: the model signature's inputs found in the reference
    features: list[str] | None = None
    #: per-feature test overrides: {"amount": "psi"} or {"amount": ["psi", 0.2]}
    tests: dict[str, str | tuple[str, float]] = Field(default_factory=dict)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    min_rows: int = Field(default=50, ge=1)
    #: a file (csv/parquet) whose profile is the reference; default: the model's training data
    reference: str | None = None
    performance: PerformanceRule | None = None
    #: which events a run raises
    events: list[str] = Field(default_factory=lambda: list(EVENT_KINDS))
    #: webhook targets: {"url", "allow_private", "secret_env", "events", "sign"}
    webhooks: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("events")
    @classmethod
    def _known_events(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(EVENT_KINDS))
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; known: {list(EVENT_KINDS)}")
        return v

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> MonitorSpec:
        try:
            spec = cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "spec"
            raise InvalidInput(f"monitor spec: {where}: {first.get('msg')}") from None
        from dockyard.monitoring.windows import parse_window

        parse_window(spec.window)
        if spec.schedule is not None:
            sched = parse_window(spec.schedule)
            if sched.kind != "time":
                raise InvalidInput("monitor spec: schedule must be a duration such as '1h'")
        from dockyard.monitoring.stattests import DEFAULT_THRESHOLDS, canonical

        for col, test in spec.tests.items():
            name = test if isinstance(test, str) else test[0]
            if canonical(str(name)) is None:
                raise InvalidInput(
                    f"monitor spec: tests.{col}: unknown drift test {name!r}; known: "
                    f"{sorted(DEFAULT_THRESHOLDS)}"
                )
        if spec.webhooks:
            from dockyard.monitoring.alerts import parse_target

            for w in spec.webhooks:
                parse_target(w)
        return spec

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def check_monitor_name(name: Any) -> str:
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 128
        or not set(name) <= _NAME_CHARS
        or name[0] in ".-"
    ):
        raise InvalidInput(
            f"bad monitor name {name!r}: 1-128 letters, digits, '.', '_' or '-', "
            "not starting with '.' or '-'"
        )
    return name


# --------------------------------------------------------------------------- the service

MONITOR_PERMISSIONS: Mapping[str, str] = {
    "run": ENDPOINT_READ,  # storing the run needs endpoint:deploy, checked inside
    "declare": ENDPOINT_DEPLOY,
    "delete_monitor": ENDPOINT_DEPLOY,
    "get_monitor": ENDPOINT_READ,
    "list_monitors": ENDPOINT_READ,
    "list_runs": ENDPOINT_READ,
    "get_run": ENDPOINT_READ,
    "latest_run": ENDPOINT_READ,
    "series": ENDPOINT_READ,
    "events": ENDPOINT_READ,
    "report": ENDPOINT_READ,
    "metrics_text": ENDPOINT_READ,
    "history": ENDPOINT_READ,
}


@enforced(MONITOR_PERMISSIONS)
class MonitorService:
    """Monitors of endpoints on behalf of ``actor`` (see the module notes)."""

    def __init__(
        self,
        store: SqlStore,
        artifacts: ArtifactStore,
        actor: Actor,
        *,
        backend: Backend | None = None,
        server: bool = False,
    ) -> None:
        self.store = store
        #: On a server, a reference *file* is refused: it would be read from the server's
        #: disk, and a path from a caller never reaches the filesystem.
        self.server = server
        self.artifacts = artifacts
        self.actor = actor
        self.backend = backend
        self.authz: Authorizer = actor.authorizer or Authorizer.local(store, actor.name)
        self._label_cache: dict[str, tuple[tuple[str, ...], pa.Table]] = {}

    # -- declaring monitors ---------------------------------------------------------------------

    def declare(
        self,
        endpoint: str,
        name: str,
        spec: Mapping[str, Any] | MonitorSpec,
        *,
        enabled: bool = True,
        expected_version: int | None = None,
    ) -> Monitor:
        """Create the monitor ``name`` on ``endpoint``, or replace its spec (compare-and-set
        on ``expected_version`` when given). Webhook targets are checked against private,
        loopback and link-local addresses now (and again at every delivery)."""
        check_endpoint_name(endpoint)
        check_monitor_name(name)
        self.authz.require(ENDPOINT_DEPLOY, endpoint)
        parsed = spec if isinstance(spec, MonitorSpec) else MonitorSpec.parse(spec)
        self._refuse_server_file(parsed.reference, "spec.reference")
        if parsed.webhooks:
            _check_webhooks(parsed.webhooks)
        doc = parsed.to_dict()
        at = now_ms()

        def write(u: SqlUnit) -> Monitor:
            if u.get_endpoint(endpoint) is None:
                raise NotFound(f"endpoint {endpoint!r} not found")
            old = u.get_monitor(endpoint, name)
            if old is None:
                if expected_version not in (None, 0):
                    raise Conflict(f"monitor {endpoint}/{name} does not exist yet")
                mon = Monitor(
                    endpoint=endpoint,
                    name=name,
                    spec=doc,
                    enabled=enabled,
                    created=at,
                    created_by=self.actor.name,
                    updated=at,
                    updated_by=self.actor.name,
                    version=1,
                    next_run=at if enabled else None,
                )
                u.insert_monitor(mon)
                action = "monitor.create"
            else:
                if expected_version is not None and expected_version != old.version:
                    raise Conflict(
                        f"monitor {endpoint}/{name} is at version {old.version}, "
                        f"not {expected_version}"
                    )
                mon = Monitor(
                    **{
                        **old.to_dict(),
                        "spec": doc,
                        "enabled": enabled,
                        "updated": at,
                        "updated_by": self.actor.name,
                        "version": old.version + 1,
                        "next_run": (old.next_run or at) if enabled else None,
                    }
                )
                if not u.update_monitor(mon, expected_version=old.version):
                    raise Conflict(f"monitor {endpoint}/{name} changed meanwhile; retry")
                action = "monitor.update"
            record_event(
                u,
                self.actor,
                action,
                "endpoint",
                endpoint,
                monitor=name,
                version=mon.version,
                enabled=enabled,
                webhooks=len(doc["webhooks"]),
            )
            return mon

        return self.store.write(write)

    def _refuse_server_file(self, reference: str | None, field: str) -> None:
        if self.server and reference is not None:
            raise InvalidInput(
                f"{field}: a reference file cannot be set over the API (it would be read "
                "from the server's disk); use the model's training profile, or "
                "`dockyard monitor declare --reference` where the file is"
            )

    def get_monitor(self, endpoint: str, name: str) -> Monitor:
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_READ, endpoint)
        mon = self.store.read(lambda u: u.get_monitor(endpoint, name))
        if mon is None:
            raise NotFound(f"monitor {endpoint}/{name} not found")
        return mon

    def list_monitors(self, endpoint: str | None = None) -> list[Monitor]:
        if endpoint is not None:
            check_endpoint_name(endpoint)
        mons = self.store.read(lambda u: u.list_monitors(endpoint))
        return [m for m in mons if self.authz.allows(ENDPOINT_READ, m.endpoint)]

    def delete_monitor(self, endpoint: str, name: str) -> None:
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_DEPLOY, endpoint)

        def write(u: SqlUnit) -> None:
            if not u.delete_monitor(endpoint, name):
                raise NotFound(f"monitor {endpoint}/{name} not found")
            record_event(u, self.actor, "monitor.delete", "endpoint", endpoint, monitor=name)

        self.store.write(write)

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        endpoint: str,
        *,
        monitor: str | None = None,
        window: str | None = None,
        since: int | None = None,
        until: int | None = None,
        reference: str | None = None,
        record: bool = True,
        now: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> MonitorRun:
        """Evaluate one window of ``endpoint`` (see the module notes) and, with ``record``,
        store it. The window is ``[since, until)`` when given, else the last ``window`` up to
        now (``"1000rows"``: the last thousand live rows). ``monitor`` takes the spec of a
        declared monitor; without it the defaults apply (``window``/``reference`` override)."""
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_DEPLOY if record else ENDPOINT_READ, endpoint)
        step = progress or (lambda _msg: None)
        at = now_ms() if now is None else now
        ep = self.store.read(lambda u: u.get_endpoint(endpoint))
        if ep is None:
            raise NotFound(f"endpoint {endpoint!r} not found")
        if monitor is not None:
            check_monitor_name(monitor)
            mon = self.store.read(lambda u: u.get_monitor(endpoint, monitor))
            if mon is None:
                raise NotFound(f"monitor {endpoint}/{monitor} not found")
            spec = MonitorSpec.parse(mon.spec)
        else:
            spec = MonitorSpec()
        if window is not None:
            spec = spec.model_copy(update={"window": window})
        if reference is not None:
            self._refuse_server_file(reference, "reference")
            spec = spec.model_copy(update={"reference": reference})
        MonitorSpec.parse(spec.to_dict())

        step("reading the prediction log")
        lo, hi, table = self._window_rows(endpoint, spec.window, since, until, at)
        step("loading the reference profile")
        primary = ep.policy.variants[ep.policy.primary]
        profile, ref_desc, signature_inputs, classes = self._reference(primary, spec.reference)
        step("comparing")
        result = self._evaluate(
            ep, primary, spec, profile, ref_desc, signature_inputs, classes, table, lo, hi
        )
        run = MonitorRun(
            id=str(uuid.uuid4()),
            endpoint=endpoint,
            monitor=monitor or "adhoc",
            created=at,
            created_by=self.actor.name,
            window_start=lo,
            window_end=hi,
            rows=int(result["window"]["rows"]),
            status=result["status"],
            dataset_drift=bool((result.get("drift") or {}).get("dataset_drift", False)),
            n_drifted=int((result.get("drift") or {}).get("n_drifted", 0)),
            n_features=int((result.get("drift") or {}).get("n_features", 0)),
            n_quality_issues=int((result.get("quality") or {}).get("n_issues", 0)),
            result={},
        )
        result.update(id=run.id, endpoint=endpoint, monitor=run.monitor, created=at, alerts=[])
        events = _events(spec, result)
        result["alerts"] = [{"event": k, "message": m} for k, m, _ in events]
        run = MonitorRun(**{**run.__dict__, "result": json_nulls(result)})
        if record:
            step("storing the run")
            self._store_run(run, spec, events)
        return run

    def _window_rows(
        self, endpoint: str, window: str, since: int | None, until: int | None, at: int
    ) -> tuple[int, int, pa.Table]:
        """``(start, end, answered rows)`` of the window: ``[since, until)`` when given, else
        :func:`~dockyard.monitoring.windows.last_window` up to now, or for a count window
        the time span of the last N live rows (:func:`~dockyard.monitoring.windows.latest`;
        found by looking back one hour, then twice as far, up to 90 days). Shadow rows of
        the span come along: they count for performance only."""
        import pyarrow.compute as pc

        from dockyard.monitoring.windows import last_window, latest, parse_window
        from dockyard.serving.predlog import read_predictions

        wspec = parse_window(window)
        hi = at if until is None else int(until)

        def rows(lo: int) -> pa.Table:
            return _live(
                read_predictions(
                    self.artifacts.root_uri,
                    endpoint,
                    since=lo,
                    until=hi,
                    cipher=self.artifacts.cipher,
                )
            )

        if since is not None:
            lo = int(since)
            if lo >= hi:
                raise InvalidInput(f"the window is empty: since {lo} is not before until {hi}")
            return lo, hi, rows(lo)
        if wspec.kind == "time":
            lo = last_window(hi, wspec).start_ms
            return lo, hi, rows(lo)
        span = _HOUR_MS
        while True:
            table = rows(hi - span)
            live = _only(table, shadow=False)
            if live.num_rows >= wspec.size or span >= _MAX_LOOK_BACK_MS:
                break
            span *= 2
        if live.num_rows == 0:
            return hi - span, hi, table
        lo = latest(live, wspec, now_ms=hi)[0].start_ms
        return lo, hi, table.filter(pc.greater_equal(table.column("time"), lo))

    def _reference(
        self, primary: ModelRef, reference: str | None
    ) -> tuple[DatasetProfile, dict[str, Any], list[str], list[Any] | None]:
        """The reference profile, its description, the primary's signature inputs and its
        classes (a classifier's, in ``proba`` order; else None)."""
        from dockyard.monitoring.profile import DatasetProfile
        from dockyard.monitoring.reference import profile_artifact_path, profile_data

        registry = self._registry()
        mv = registry.get_model_version(primary.model, primary.version)
        inputs = _signature_inputs(mv.signature)
        classes = (mv.signature or {}).get("classes") or None
        if reference is not None:
            prof = profile_data(reference)
            desc = {"description": f"file {reference}", "rows": _profile_rows(prof)}
            return prof, desc, inputs, classes
        training = [d for d in mv.datasets if d.get("context") == "training"]
        if not mv.run_id or not training:
            raise InvalidInput(
                f"model {primary} has no reference: the run it was registered from logged "
                "no training dataset (call dockyard.log_input(train_df) in that run), or "
                "pass a reference file (--reference train.parquet)"
            )
        tracking = self._tracking()
        for d in training:
            path = profile_artifact_path(d["digest"])
            try:
                _info, chunks = tracking.open_artifact(mv.run_id, path)
            except NotFound:
                continue
            prof = DatasetProfile.from_dict(json.loads(b"".join(chunks)))
            desc = {
                "description": f"model {primary} training data {d.get('name')!r}",
                "rows": _profile_rows(prof),
                "run_id": mv.run_id,
                "dataset_digest": d["digest"],
            }
            return prof, desc, inputs, classes
        raise InvalidInput(
            f"model {primary}: its training dataset has no profile (it was logged before "
            "profiles existed, or with profile=False); log it again with "
            "dockyard.log_input(train_df), or pass a reference file (--reference train.parquet)"
        )

    def _registry(self) -> Any:
        from dockyard.registry.service import RegistryService

        if self.backend is not None:
            return self.backend.registry(self.actor)
        return RegistryService(self.store, self.artifacts, self.actor)

    def _tracking(self) -> Any:
        from dockyard.tracking.service import TrackingService

        return TrackingService(self.store, self.artifacts, self.actor)

    def _evaluate(
        self,
        ep: Endpoint,
        primary: ModelRef,
        spec: MonitorSpec,
        profile: DatasetProfile,
        ref_desc: dict[str, Any],
        signature_inputs: list[str],
        classes: list[Any] | None,
        table: pa.Table,
        lo: int,
        hi: int,
    ) -> dict[str, Any]:
        from dockyard.monitoring.drift import drift_report
        from dockyard.monitoring.quality import data_quality
        from dockyard.serving.predlog import INPUT_PREFIX

        live = _only(table, shadow=False)
        rows = live.num_rows
        result: dict[str, Any] = {
            "window": {"start_ms": lo, "end_ms": hi, "rows": rows, "spec": spec.window},
            "reference": ref_desc,
            "drift": None,
            "quality": None,
            "performance": None,
            "notes": [],
        }
        if rows == 0:
            result["status"] = "no_data"
            result["notes"].append("no live predictions in the window")
            return result
        current = _features_table(live, INPUT_PREFIX)
        ref_cols = profile.columns
        if spec.features:
            unknown = [f for f in spec.features if f not in ref_cols]
            if unknown:
                raise InvalidInput(f"features without a reference profile: {unknown}")
            features = list(spec.features)
        else:
            features = [c for c in signature_inputs if c in ref_cols] or [
                c for c in ref_cols if c in current.column_names
            ]
        unknown_tests = sorted(set(spec.tests) - set(features))
        if unknown_tests:
            raise InvalidInput(f"test overrides for columns not monitored: {unknown_tests}")
        reference = {c: ref_cols[c] for c in features}
        result["quality"] = data_quality(reference, current).to_dict()
        if rows < spec.min_rows:
            result["status"] = "insufficient"
            result["notes"].append(
                f"{rows} live rows < min_rows {spec.min_rows}: no drift verdict on this window"
            )
        else:
            ref_with_pred: dict[str, Any] = dict(reference)
            pred_note = None
            if _PRED in live.column_names:
                baseline, pred_note = self._prediction_baseline(ep.name, primary, spec, lo)
                if baseline is not None:
                    ref_with_pred[_PRED] = baseline
                    current = current.append_column(_PRED, live.column(_PRED))
            overrides = {c: (t if isinstance(t, str) else tuple(t)) for c, t in spec.tests.items()}
            drift = drift_report(
                ref_with_pred,
                current,
                overrides=overrides,
                share=spec.drift_share,
                prediction=_PRED if _PRED in ref_with_pred else None,
            )
            result["drift"] = drift.to_dict()
            if pred_note:
                result["notes"].append(pred_note)
            result["status"] = "ok"
        result["performance"] = self._performance(table, ep, classes)
        return result

    def _labels(self, endpoint: str) -> pa.Table:
        """The endpoint's current labels, read once per set of label files: a scheduler pass
        catching up on many windows reads them once, a new ingest is seen at the next run."""
        from dockyard.serving.labels import LabelStore

        store = LabelStore(self.artifacts.root_uri, self.artifacts.cipher)
        files = tuple("/".join(p) for p in store.files(endpoint))
        cached = self._label_cache.get(endpoint)
        if cached is None or cached[0] != files:
            cached = self._label_cache[endpoint] = (files, store.read_labels(endpoint))
        return cached[1]

    def _performance(
        self, table: pa.Table, ep: Endpoint, classes: list[Any] | None
    ) -> dict[str, Any] | None:
        """Realised performance per variant (labels joined by request id and row), the A/B
        verdict between the primary and each other live variant with traffic, and a CBPE
        estimate over each variant's rows that have no label yet."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from dockyard.monitoring.performance import (
            compare_variants,
            estimate_performance,
            performance_by_variant,
            variant_rows,
        )
        from dockyard.serving.labels import join_labels

        if table.num_rows == 0 or "prediction" not in table.column_names:
            return None
        labels = self._labels(ep.name)
        if labels.num_rows:
            joined = join_labels(table, labels)
        else:
            joined = table.append_column("label", pa.nulls(table.num_rows, pa.string()))
        perf = performance_by_variant(joined, classes=classes)
        classification = perf.get("task") == "classification"
        for key, v in perf["variants"].items():
            v["estimated"] = None
            if not classification or not classes or "proba" not in joined.column_names:
                continue
            rows = variant_rows(
                joined, v.get("variant", key), shadow=bool(v.get("shadow")), labeled=False
            )
            unlabeled = rows.filter(pc.is_null(rows.column("label")))
            unlabeled = unlabeled.filter(pc.is_valid(unlabeled.column("proba")))
            if unlabeled.num_rows == 0:
                continue
            labeled = rows.filter(
                pc.and_(pc.is_valid(rows.column("label")), pc.is_valid(rows.column("proba")))
            )
            calibration = None
            if labeled.num_rows >= 50:
                calibration = (labeled.column("label"), labeled.column("proba"))
            try:
                v["estimated"] = estimate_performance(
                    unlabeled.column("proba"), classes, calibration=calibration
                )
            except InvalidInput as exc:  # e.g. probabilities of another set of classes
                v["estimated"] = {"estimated": True, "error": str(exc)}
        live = [n for n, w in ep.policy.weights.items() if w > 0]
        perf["comparison"] = None
        if len(live) >= 2 and perf.get("labeled"):
            primary = ep.policy.primary
            other = next(n for n in live if n != primary)
            metric = "accuracy" if classification else "rmse"
            perf["comparison"] = compare_variants(
                variant_rows(joined, primary),
                variant_rows(joined, other),
                metric,
                classes=classes,
                names=(primary, other),
            )
        return perf

    def _prediction_baseline(
        self, endpoint: str, primary: ModelRef, spec: MonitorSpec, window_start: int
    ) -> tuple[Any, str | None]:
        """The profile of the primary version's first window of predictions (see notes)."""
        import pyarrow.compute as pc

        from dockyard.monitoring.profile import profile_table
        from dockyard.monitoring.windows import parse_window
        from dockyard.serving.predlog import iter_prediction_tables, unify_tables

        wspec = parse_window(spec.window)
        cols = ["time", "model", "model_version", "shadow", "status", _PRED]
        parts: list[pa.Table] = []
        first: int | None = None
        got = 0
        for t in iter_prediction_tables(
            self.artifacts.root_uri,
            endpoint,
            until=window_start,
            cipher=self.artifacts.cipher,
            columns=cols,
        ):
            if _PRED not in t.column_names or "model_version" not in t.column_names:
                continue
            mask = pc.and_(
                pc.and_(
                    pc.equal(t.column("model"), primary.model),
                    pc.equal(t.column("model_version"), primary.version),
                ),
                pc.and_(pc.equal(t.column("status"), 200), pc.invert(t.column("shadow"))),
            )
            t = t.filter(mask)
            if t.num_rows == 0:
                continue
            start = int(pc.min(t.column("time")).as_py())
            first = start if first is None else min(first, start)
            if wspec.kind == "time":
                t = t.filter(pc.less(t.column("time"), first + int(wspec.size)))
            parts.append(t.select(["time", _PRED]))
            got += t.num_rows
            if wspec.kind == "count" and got >= int(wspec.size):
                break
            if wspec.kind == "time" and start >= first + int(wspec.size):
                break
        if not parts:
            return None, (
                f"prediction drift: no earlier predictions of {primary} to compare with "
                "(the baseline is its first window in production)"
            )
        base = unify_tables(parts)
        if wspec.kind == "count":
            base = base.slice(0, int(wspec.size))
        prof = profile_table(base.select([_PRED]))
        return prof.columns[_PRED], None

    def _store_run(
        self, run: MonitorRun, spec: MonitorSpec, events: list[tuple[str, str, dict[str, Any]]]
    ) -> None:
        points = list(_series(run.result))

        def write(u: SqlUnit) -> None:
            u.insert_monitor_run(run, points)
            for kind, message, payload in events:
                body = {
                    "event": kind,
                    "message": message,
                    "endpoint": run.endpoint,
                    "monitor": run.monitor,
                    "run_id": run.id,
                    "window": {"start_ms": run.window_start, "end_ms": run.window_end},
                    **payload,
                }
                event_id = u.insert_monitoring_event(
                    time=run.created,
                    kind=kind,
                    endpoint=run.endpoint,
                    monitor=run.monitor,
                    run_id=run.id,
                    payload=body,
                )
                if spec.webhooks:
                    from dockyard.monitoring.alerts import enqueue_for_event

                    enqueue_for_event(
                        u,
                        event_id,
                        run.endpoint,
                        kind,
                        body | {"event_id": event_id},
                        spec.webhooks,
                    )
            record_event(
                u,
                self.actor,
                "monitor.run",
                "endpoint",
                run.endpoint,
                run_id=run.id,
                monitor=run.monitor,
                window_start=run.window_start,
                window_end=run.window_end,
                rows=run.rows,
                status=run.status,
                events=[k for k, _m, _p in events],
            )

        self.store.write(write)

    # -- reading ------------------------------------------------------------------------------

    def list_runs(
        self,
        endpoint: str,
        *,
        monitor: str | None = None,
        since: int | None = None,
        limit: int = 100,
    ) -> list[MonitorRun]:
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_READ, endpoint)
        limit = max(1, min(int(limit), 1000))
        return self.store.read(
            lambda u: u.list_monitor_runs(endpoint, monitor=monitor, since=since, limit=limit)
        )

    def get_run(self, run_id: str) -> MonitorRun:
        try:
            uuid.UUID(str(run_id))
        except ValueError:
            raise InvalidInput(f"bad monitor run id {run_id!r}") from None
        run = self.store.read(lambda u: u.get_monitor_run(str(run_id)))
        if run is None or not self.authz.allows(ENDPOINT_READ, run.endpoint):
            raise NotFound(f"monitor run {run_id} not found")
        return run

    def latest_run(self, endpoint: str, monitor: str | None = None) -> MonitorRun:
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_READ, endpoint)
        runs = self.store.read(
            lambda u: u.list_monitor_runs(endpoint, monitor=monitor, limit=1, with_result=True)
        )
        if not runs:
            raise NotFound(f"endpoint {endpoint!r} has no monitor runs yet")
        return runs[0]

    def series(
        self,
        endpoint: str,
        *,
        monitor: str | None = None,
        metrics: Sequence[str] | None = None,
        feature: str | None = None,
        since: int | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        check_endpoint_name(endpoint)
        self.authz.require(ENDPOINT_READ, endpoint)
        limit = max(1, min(int(limit), 100_000))
        return self.store.read(
            lambda u: u.monitor_series(
                endpoint,
                monitor=monitor,
                metrics=metrics,
                feature=feature,
                since=since,
                limit=limit,
            )
        )

    def events(
        self,
        *,
        endpoint: str | None = None,
        after_id: int = 0,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[MonitoringEvent]:
        if endpoint is not None:
            check_endpoint_name(endpoint)
            self.authz.require(ENDPOINT_READ, endpoint)
        unknown = sorted(set(kinds or ()) - set(EVENT_KINDS))
        if unknown:
            raise InvalidInput(f"unknown event kinds {unknown}; known: {list(EVENT_KINDS)}")
        limit = max(1, min(int(limit), 1000))
        got = self.store.read(
            lambda u: u.list_monitoring_events(
                after_id=int(after_id), endpoint=endpoint, kinds=kinds, limit=limit
            )
        )
        return [e for e in got if self.authz.allows(ENDPOINT_READ, e.endpoint)]

    def report(self, run: MonitorRun, *, fmt: str = "html", history_windows: int = 48) -> str:
        """The run rendered as a self-contained HTML page or JSON, with the drift scores of
        the monitor's last ``history_windows`` windows for the over-time plot."""
        from dockyard.monitoring import report as rep

        self.authz.require(ENDPOINT_READ, run.endpoint)
        history = self.history(run, history_windows)
        if fmt == "html":
            return rep.render_html(run.result, history)
        if fmt == "json":
            return rep.render_json(run.result, history)
        raise InvalidInput(f"unknown report format {fmt!r}: use html or json")

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of the newest run of every monitor of the endpoints the
        actor may read (:mod:`dockyard.monitoring.prometheus`)."""
        from dockyard.monitoring.prometheus import render_metrics

        runs = self.store.read(lambda u: u.newest_monitor_runs())
        return render_metrics(r for r in runs if self.authz.allows(ENDPOINT_READ, r.endpoint))

    def history(self, run: MonitorRun, windows: int = 48) -> list[dict[str, Any]]:
        """The drift scores of ``run``'s monitor over its last ``windows`` windows up to it
        (empty with fewer than two): the report's over-time plot."""
        self.authz.require(ENDPOINT_READ, run.endpoint)
        recent = self.store.read(
            lambda u: u.list_monitor_runs(
                run.endpoint, monitor=run.monitor, until=run.window_end, limit=windows
            )
        )
        if len(recent) < 2:
            return []
        since = min(r.window_start for r in recent) - 1
        ids = {r.id for r in recent}
        points = self.store.read(
            lambda u: u.monitor_series(
                run.endpoint, monitor=run.monitor, metrics=["drift_score"], since=since
            )
        )
        thresholds = {
            name: f.get("threshold")
            for name, f in ((run.result.get("drift") or {}).get("features") or {}).items()
        }
        return [
            {
                "window_start_ms": p["window_start_ms"],
                "window_end_ms": p["window_end_ms"],
                "feature": p["feature"],
                "metric": p["metric"],
                "value": p["value"],
                "threshold": thresholds.get(p["feature"]),
            }
            for p in points
            if p["run_id"] in ids
        ]


# --------------------------------------------------------------------------- the scheduler


class MonitorScheduler:
    """Runs declared, enabled monitors on aligned tumbling windows (see the module notes);
    built on :class:`dockyard.loops.LeasedLoop`."""

    LEASE = "monitor-scheduler"

    def __init__(self, backend: Backend, *, interval: float = 30.0) -> None:
        from dockyard.loops import LeasedLoop

        self.backend = backend
        self.actor = Actor(SCHEDULER, authorizer=Authorizer.allow_all(SCHEDULER))
        self.loop = LeasedLoop(backend.store, self.LEASE, self._pass, interval=interval)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def run_once(self, now: int | None = None) -> list[MonitorRun]:
        """Evaluate every due window of every due monitor, under the lease; the runs stored
        (empty when another replica holds the lease)."""
        return self.loop.run_once(now) or []

    def _pass(self, at: int) -> list[MonitorRun]:
        from dockyard.monitoring.windows import parse_window

        store = self.backend.store
        service = MonitorService(store, self.backend.artifacts, self.actor, backend=self.backend)
        done: list[MonitorRun] = []
        for mon in store.read(lambda u, at=at: u.due_monitors(at)):
            try:
                spec = MonitorSpec.parse(mon.spec)
                wspec = parse_window(spec.window)
                # every `schedule`, else every window (a count window: every hour)
                if spec.schedule:
                    every = parse_window(spec.schedule).size
                else:
                    every = wspec.size if wspec.kind == "time" else _HOUR_MS
                next_run = at + int(every)
                claimed = store.write(
                    lambda u, m=mon, n=next_run: u.claim_monitor(
                        m.endpoint, m.name, seen_next_run=m.next_run, next_run=n
                    )
                )
                if not claimed:
                    continue  # another replica took it
                if wspec.kind == "count":
                    run = service.run(mon.endpoint, monitor=mon.name, now=at)
                    done.append(run)
                    continue
                size = int(wspec.size)
                end_aligned = at - at % size
                start = (
                    mon.last_window_end if mon.last_window_end is not None else end_aligned - size
                )
                start = max(start, end_aligned - size * _MAX_CATCH_UP)
                while start + size <= end_aligned:
                    run = service.run(
                        mon.endpoint, monitor=mon.name, since=start, until=start + size, now=at
                    )
                    done.append(run)
                    store.write(
                        lambda u, m=mon, e=start + size: u.set_monitor_window_end(
                            m.endpoint, m.name, e
                        )
                    )
                    start += size
            except Exception:  # one monitor's trouble must not stop the others
                log.exception("monitor scheduler: %s/%s", mon.endpoint, mon.name)
        # every pass, not only after new runs: retries are due on their backoff schedule
        _deliver_alerts(self.backend)
        return done


def _check_webhooks(webhooks: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a webhook whose host resolves to a private, loopback or link-local address
    (unless it says ``allow_private``); :func:`dockyard.monitoring.alerts.declare_target`."""
    from dockyard.monitoring.alerts import declare_target

    for w in webhooks:
        declare_target(w)


def _deliver_alerts(backend: Backend) -> None:
    try:
        from dockyard.monitoring.alerts import AlertDispatcher

        AlertDispatcher(backend.store).deliver_due()
    except Exception:
        log.exception("alert delivery pass failed")


# --------------------------------------------------------------------------- helpers


def _live(table: pa.Table) -> pa.Table:
    """Answered rows (status 200): live ones and shadows (kept for performance)."""
    import pyarrow.compute as pc

    if table.num_rows == 0 or "status" not in table.column_names:
        return table
    return table.filter(pc.equal(table.column("status"), 200))


def _only(table: pa.Table, *, shadow: bool) -> pa.Table:
    import pyarrow.compute as pc

    if table.num_rows == 0 or "shadow" not in table.column_names:
        return table
    col = table.column("shadow").fill_null(False)
    return table.filter(col if shadow else pc.invert(col))


def _features_table(live: pa.Table, prefix: str) -> pa.Table:
    import pyarrow as pa

    names = [c for c in live.column_names if c.startswith(prefix)]
    return pa.table({c[len(prefix) :]: live.column(c) for c in names})


def _signature_inputs(signature: Mapping[str, Any] | None) -> list[str]:
    inputs = (signature or {}).get("inputs") or {}
    if inputs.get("kind") == "columns":
        return [c["name"] for c in inputs.get("columns", [])]
    return []


def _profile_rows(prof: DatasetProfile) -> int:
    return max((c.rows for c in prof.columns.values()), default=0)


def _events(spec: MonitorSpec, result: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(kind, message, payload)`` of the events this result raises under ``spec``."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    drift = result.get("drift") or {}
    if "drift.detected" in spec.events and drift.get("dataset_drift"):
        cols = drift.get("drifted_columns") or []
        out.append(
            (
                "drift.detected",
                f"{drift.get('n_drifted')} of {drift.get('n_features')} features drifted "
                f"(share {drift.get('share_drifted', 0):.2f} >= {drift.get('drift_share')}): "
                + ", ".join(cols[:10]),
                {"drifted_columns": cols, "share_drifted": drift.get("share_drifted")},
            )
        )
    quality = result.get("quality") or {}
    if "quality.issues" in spec.events and quality.get("n_issues"):
        checks = sorted({f"{i['column']}:{i['check']}" for i in quality.get("issues", [])})
        out.append(
            (
                "quality.issues",
                f"{quality['n_issues']} data-quality issues: " + ", ".join(checks[:10]),
                {"issues": checks},
            )
        )
    rule = spec.performance
    perf = result.get("performance") or {}
    if rule is not None and "performance.degraded" in spec.events:
        for name, v in (perf.get("variants") or {}).items():
            if v.get("shadow"):
                continue
            metrics = v.get("metrics") or {}
            value = metrics.get(rule.metric)
            if value is None or int(v.get("labeled") or 0) < rule.min_labeled:
                continue
            low = rule.min is not None and value < rule.min
            high = rule.max is not None and value > rule.max
            if low or high:
                bound = f"< {rule.min}" if low else f"> {rule.max}"
                out.append(
                    (
                        "performance.degraded",
                        f"variant {name}: {rule.metric} {value:.4g} {bound} "
                        f"on {v.get('labeled')} labeled rows",
                        {"variant": name, "metric": rule.metric, "value": value},
                    )
                )
    return out


def _series(result: Mapping[str, Any]) -> Iterable[tuple[str, str, str, float | None]]:
    """Time-series points ``(variant, feature, metric, value)`` of a run's result."""
    window = result.get("window") or {}
    yield "", "", "rows", float(window.get("rows") or 0)
    drift = result.get("drift") or {}
    if drift:
        yield "", "", "share_drifted", _num(drift.get("share_drifted"))
        yield "", "", "dataset_drift", 1.0 if drift.get("dataset_drift") else 0.0
        for name, f in (drift.get("features") or {}).items():
            yield "", name, "drift_score", _num(f.get("score"))
            yield "", name, "drifted", 1.0 if f.get("drifted") else 0.0
        pred = drift.get("prediction")
        if pred:
            yield "", _PRED, "drift_score", _num(pred.get("score"))
    quality = result.get("quality") or {}
    if quality:
        yield "", "", "quality_issues", float(quality.get("n_issues") or 0)
        for name, c in (quality.get("columns") or {}).items():
            rate = c.get("missing_rate")
            if rate is not None:
                yield "", name, "missing_rate", _num(rate)
    perf = result.get("performance") or {}
    for variant, v in (perf.get("variants") or {}).items():
        yield variant, "", "coverage", _num(v.get("coverage"))
        for metric, value in (v.get("metrics") or {}).items():
            if isinstance(value, int | float) and metric != "n":
                yield variant, "", metric, _num(value)
        for metric, value in (v.get("estimated") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool) and metric != "n":
                yield variant, "", f"estimated_{metric}", _num(value)


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None if v is None else float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
