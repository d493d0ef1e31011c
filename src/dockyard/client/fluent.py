"""The fluent tracking API: ``with dy.start_run(experiment="fraud") as run: dy.log_metric(...)``.

A process-wide stack holds the active runs (the top one receives the ``log_*`` calls;
``nested=True`` starts a child of it). Params and tags are written at once, so a write-once
conflict surfaces at the call that caused it; metric points go through a
:class:`~dockyard.client._buffer.MetricBuffer` and never block the training loop.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from dockyard.client._buffer import MetricBuffer
from dockyard.client.client import Client
from dockyard.core.entities import ArtifactFile, DatasetInput, Metric, Run, RunStatus
from dockyard.core.errors import Conflict, InvalidInput
from dockyard.tracking import _validation as v

GIT_COMMIT_TAG = "dockyard.source.git_commit"
GIT_DIRTY_TAG = "dockyard.source.git_dirty"
_GIT_TIMEOUT_SECONDS = 2.0

_lock = threading.RLock()
_checked_keys: set[str] = set()  # metric keys that passed the checks (bounded)
_new_tuple = tuple.__new__
_stack: list[ActiveRun] = []
_client: Client | None = None
_buffer: MetricBuffer | None = None


def get_client() -> Client:
    """The client the fluent API uses (made from the settings on first use)."""
    global _client
    with _lock:
        if _client is None:
            _client = Client()
        return _client


def set_tracking_uri(uri: str | None) -> None:
    """Point the fluent API at a server (``http://host:port``) or, with None, the local store."""
    global _client, _buffer
    with _lock:
        if _stack:
            raise Conflict("cannot change the tracking URI while a run is active")
        if _buffer is not None:
            _buffer.close()
        _client, _buffer = Client(tracking_uri=uri) if uri else Client(), None


def _get_buffer() -> MetricBuffer:
    global _buffer
    with _lock:
        if _buffer is None:
            client = get_client()
            _buffer = MetricBuffer(
                lambda run_id, points: client.log_batch(run_id, metrics=points),
                flush_seconds=float(client.settings.metric_flush_seconds),
                batch_size=int(client.settings.metric_batch_size),
            )
        return _buffer


class ActiveRun:
    """A started run; a context manager that ends it (FAILED if the block raised)."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.run_id = run.run_id

    @property
    def run(self) -> Run:
        """The run as stored now (params, latest metrics, tags), after flushing metrics."""
        flush()
        return get_client().get_run(self.run_id)

    @property
    def info(self) -> Run:
        return self._run

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        end_run(status, _run=self)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id} name={self._run.name!r}>"


def _git(*args: str, cwd: str) -> str | None:
    """Output of one git command in ``cwd``, or None when git is missing, slow or failing."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            # Never take the index lock (a concurrent `git commit` must not fail because of us)
            # and never prompt for anything.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_source_tags(cwd: str | None = None) -> dict[str, str]:
    """``{dockyard.source.git_commit: <sha>, dockyard.source.git_dirty: "true"|"false"}`` when
    ``cwd`` (default: the working directory) is inside a git work tree with a commit, else {}.

    Dirty means a tracked file is modified or staged; untracked files do not count (like
    MLflow), so an untracked ``.dockyard`` home or scratch notebook does not mark every run.
    """
    try:
        where = cwd or os.getcwd()
    except OSError:
        return {}
    commit = _git("rev-parse", "--verify", "-q", "HEAD", cwd=where)
    if not commit or len(commit.strip()) < 40:
        return {}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=where)
    if status is None:
        return {}
    return {GIT_COMMIT_TAG: commit.strip(), GIT_DIRTY_TAG: "true" if status.strip() else "false"}


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    *,
    run_id: str | None = None,
    nested: bool = False,
    tags: Mapping[str, Any] | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active one.

    ``experiment`` is a name (created if missing) or an id; default: the ``Default``
    experiment. ``nested=True`` makes the run a child of the currently active run.
    A new run started inside a git work tree gets the tags ``dockyard.source.git_commit`` and
    ``dockyard.source.git_dirty`` (unless ``tags`` sets them); the registry records them as the
    code version of a model registered from the run.
    """
    client = get_client()
    with _lock:
        if _stack and not nested:
            raise Conflict(
                f"run {_stack[-1].run_id} is already active; end it first or pass nested=True"
            )
        if run_id is not None:
            run = client.get_run(v.check_run_id(run_id))
            if run.status is not RunStatus.RUNNING:
                raise Conflict(f"run {run_id} has ended ({run.status}); it cannot be resumed")
        else:
            exp_id = None
            if experiment is not None:
                exp = (
                    client.resolve_experiment(experiment)
                    if str(experiment).isdigit()
                    else (client.get_or_create_experiment(experiment))
                )
                exp_id = exp.experiment_id
            parent = _stack[-1].run_id if (nested and _stack) else None
            if parent is not None and exp_id is None:
                exp_id = _stack[-1].info.experiment_id
            all_tags = dict(tags or {})
            if GIT_COMMIT_TAG not in all_tags and GIT_DIRTY_TAG not in all_tags:
                # A child run shares its parent's code version (no git call per fold).
                inherited = _stack[-1].info.tags if parent is not None else {}
                if GIT_COMMIT_TAG in inherited:
                    all_tags.update(
                        {k: inherited[k] for k in (GIT_COMMIT_TAG, GIT_DIRTY_TAG) if k in inherited}
                    )
                else:
                    all_tags.update(git_source_tags())
            run = client.start_run(exp_id, name=name, tags=all_tags, parent_run_id=parent)
        active = ActiveRun(run)
        _stack.append(active)
        return active


def active_run() -> ActiveRun | None:
    with _lock:
        return _stack[-1] if _stack else None


def _current() -> ActiveRun:
    with _lock:
        if not _stack:
            raise InvalidInput("no active run: call dockyard.start_run() first")
        return _stack[-1]


def end_run(status: str | RunStatus = RunStatus.FINISHED, *, _run: ActiveRun | None = None) -> None:
    """Flush buffered metrics and end the active run (or the given one)."""
    with _lock:
        if not _stack:
            return
        target = _run or _stack[-1]
        try:
            flush()
        finally:
            # Leave the stack consistent even if flushing raised.
            if target in _stack:
                _stack.remove(target)
        ended = get_client().end_run(target.run_id, status)
        target._run = ended


def flush() -> None:
    """Write every buffered metric point now; raises if a flush failed."""
    if _buffer is not None:
        _buffer.flush()


def log_param(key: str, value: Any) -> None:
    get_client().log_batch(_current().run_id, params={key: value})


def log_params(params: Mapping[str, Any]) -> None:
    get_client().log_batch(_current().run_id, params=params)


def set_tag(key: str, value: Any) -> None:
    get_client().log_batch(_current().run_id, tags={key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    get_client().log_batch(_current().run_id, tags=tags)


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Buffer one metric point; returns at once (the flush happens in the background)."""
    run_id = _stack[-1].run_id if _stack else _current().run_id
    # Called once per point in a training loop: the usual arguments (a known key, a float, an
    # int step) skip the full checks, which still run, in the same order, for anything else.
    if type(key) is not str or key not in _checked_keys:
        v.check_key("metric", key)
        if len(_checked_keys) < 4096:
            _checked_keys.add(key)
    if type(value) is not float:
        value = v.metric_value(key, value)
    if timestamp is None:
        timestamp = time.time_ns() // 1_000_000
    elif type(timestamp) is not int or not -(2**63) <= timestamp < 2**63:
        timestamp = v.integer("timestamp", timestamp)
    if step is None:
        step = 0
    elif type(step) is not int or not -(2**63) <= step < 2**63:
        step = v.integer("step", step)
    (_buffer or _get_buffer()).add(run_id, _new_tuple(Metric, (key, value, timestamp, step)))


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    run_id = _current().run_id
    ts = time.time_ns() // 1_000_000 if timestamp is None else v.integer("timestamp", timestamp)
    s = 0 if step is None else v.integer("step", step)
    points = []
    for key, value in metrics.items():
        v.check_key("metric", key)
        points.append(Metric(key, v.metric_value(key, value), ts, s))
    _get_buffer().add_many(run_id, points)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> ArtifactFile:
    return get_client().log_artifact(_current().run_id, local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> list[ArtifactFile]:
    return get_client().log_artifacts(_current().run_id, local_dir, artifact_path)


def log_input(
    data: Any,
    name: str | None = None,
    context: str = "training",
    source: str | None = None,
    *,
    profile: bool = True,
) -> DatasetInput:
    """Record a dataset the run used: a DataFrame, an array, a .csv/.parquet path or a
    ready DatasetInput. Its content digest, schema and row count are computed here.

    With ``profile`` (the default) the data's profile -- per column counts, quantiles, a
    histogram, top categories, a sample of at most 10,000 values -- is computed here too and
    logged as the run artifact ``profiles/<digest>.json``: the reference production
    monitoring compares against (:mod:`dockyard.monitoring.reference`). ``profile=False``
    keeps every value of the data on this machine."""
    run_id = _current().run_id
    if isinstance(data, DatasetInput):
        ds = data
    else:
        from dockyard.data.dataset import describe_dataset

        if name is None:
            name = Path(data).stem if isinstance(data, str | Path) else "dataset"
        ds = describe_dataset(data, name=name, context=context, source=source)
        if profile:
            _log_profile(run_id, data, ds.digest)
    get_client().log_inputs(run_id, [ds])
    return ds


def _log_profile(run_id: str, data: Any, digest: str) -> None:
    import tempfile

    from dockyard.monitoring.reference import PROFILE_DIR, profile_data, profile_json

    body = profile_json(profile_data(data))
    with tempfile.TemporaryDirectory(prefix="dockyard-profile-") as tmp:
        path = Path(tmp) / f"{digest}.json"
        path.write_bytes(body)
        get_client().log_artifact(run_id, path, PROFILE_DIR)


_MODEL_API = ("log_model", "load_model", "register_model", "ModelInfo")


def __getattr__(name: str) -> Any:
    """``fluent.log_model`` and friends live in :mod:`dockyard.client.models` (loaded lazily)."""
    if name in _MODEL_API:
        from dockyard.client import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
