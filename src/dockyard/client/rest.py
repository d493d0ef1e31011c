"""The tracking service over HTTP: :class:`RestTrackingService`.

It has the same public methods, signatures and return types as
:class:`dockyard.tracking.service.TrackingService`, so the SDK and the CLI use either one without
knowing which: local mode calls the service in-process, remote mode calls a Dockyard server
(``dockyard server``) through this class. Results are the same domain objects (``Experiment``,
``Run``, ``Page[Metric]``...), read back with their ``from_dict``.

Errors: the server answers every failure with ``{"error": {"code", "message", "details"}}``;
the code is mapped back to its exception class (:func:`~dockyard.core.errors.error_class_for_code`)
and raised with the server's message and details, so ``except NotFound`` works the same locally
and remotely. A server that cannot be reached raises :class:`~dockyard.core.errors.Unavailable`
naming its URL.

Wire details:

* One ``httpx.Client`` (connection keep-alive); httpx is imported when the first
  RestTrackingService is built, not when this module is.
* Non-finite metric values travel as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
* Path segments (run ids, metric and tag keys, experiment names, artifact paths) are
  percent-encoded per segment, dots included where a segment is only dots, so no layer between
  here and the server can normalise ``..`` away; the server still refuses it.
* Artifact uploads stream the file in chunks; downloads stream into a temporary file next to
  the destination, are checked against the server's ``X-Dockyard-Digest`` (sha256), then
  renamed into place. ``log_artifacts`` applies the same local checks as the service
  (:func:`~dockyard.artifacts.paths.iter_local_folder`: no symlink leaving the folder).

Values are checked by the server's service; this class only refuses what cannot be put on the
wire faithfully (a non-string key, a string where a metric number belongs, an id that would
change the URL's shape), with the service's own messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Self
from urllib.parse import quote

from dockyard.artifacts._private import create_private, publish_mode
from dockyard.artifacts.paths import (
    iter_local_folder,
    safe_local_destination,
    safe_prefix,
    safe_relpath,
)
from dockyard.core.entities import (
    ArtifactFile,
    AuditEvent,
    AuditVerification,
    DatasetInput,
    Experiment,
    Metric,
    Page,
    Run,
    RunStatus,
)
from dockyard.core.errors import (
    DockyardError,
    IntegrityError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    error_class_for_code,
)
from dockyard.core.wire import encode_json, wire_float
from dockyard.tracking import _validation as v
from dockyard.tracking._shortcuts import BatchShortcuts

if TYPE_CHECKING:
    import httpx

__all__ = ["RestTrackingService", "RestTransport"]

API = "/api/v1"
_CHUNK = 1024 * 1024


# -- encoding helpers ------------------------------------------------------------------------


def _seg(text: str) -> str:
    """One URL path segment, percent-encoded; a dots-only segment is encoded too."""
    quoted = quote(text, safe="")
    if quoted.strip(".") == "":
        # "." and ".." would be removed by URL normalisation (httpx does it) before reaching
        # the server; encoded, they arrive as written and the server refuses them.
        quoted = quoted.replace(".", "%2E")
    return quoted


def _segs(path: str) -> str:
    """A multi-segment value (artifact path, key with '/'), encoded segment by segment."""
    return "/".join(_seg(part) for part in path.split("/"))


# A run id with '/' or '%' would change which route the URL hits: both are checked here, with
# the service's own checks and messages, before they become URL segments.
_run_seg = v.check_run_id
_experiment_seg = v.check_experiment_id


def _wire_map(kind: str, values: Mapping[str, Any] | None) -> dict[str, str]:
    """Params or tags as the service stores them: string keys, values as their str()."""
    out: dict[str, str] = {}
    for key, value in (values or {}).items():
        if not isinstance(key, str):
            # JSON would silently turn 1 into "1"; the service refuses non-string keys.
            raise InvalidInput(f"{kind} key must be a non-empty string, got {key!r}")
        out[key] = value if isinstance(value, str) else str(value)
    return out


def _wire_int(value: Any) -> Any:
    """Integers as JSON integers; whole floats and numpy integers too (the service takes them)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) and hasattr(value, "__index__"):
        return value.__index__()
    return value


def _wire_metric_value(key: Any, value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, int):
        return value  # bool: the server refuses it, as the service does; int: exact in JSON
    if isinstance(value, str | bytes):
        # On the wire a string means a non-finite float; never let "NaN" (text) become one.
        raise InvalidInput(f"metric {key!r} value must be a number, got {value!r}")
    if hasattr(value, "__float__"):
        try:
            return wire_float(float(value))
        except (TypeError, ValueError, OverflowError):
            raise InvalidInput(f"metric {key!r} value must be a number, got {value!r}") from None
    return value


def _wire_metric(m: Metric | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(m, Metric):
        return {
            "key": m.key,
            "value": _wire_metric_value(m.key, m.value),
            "step": _wire_int(m.step),
            "timestamp": _wire_int(m.timestamp),
        }
    if isinstance(m, Mapping):
        if "key" not in m or "value" not in m:
            raise InvalidInput(f"a metric point needs 'key' and 'value'; got {dict(m)!r}")
        point = {"key": m["key"], "value": _wire_metric_value(m["key"], m["value"])}
        # Other keys are ignored, as the service ignores them.
        for name in ("step", "timestamp"):
            if name in m:
                point[name] = _wire_int(m[name])
        return point
    raise InvalidInput(f"a metric point must be a Metric or a mapping, got {m!r}")


def _upload_chunks(stream: Iterable[bytes] | BinaryIO, max_bytes: int | None) -> Iterator[bytes]:
    """The bytes of a file object or an iterable, in chunks, stopping past ``max_bytes``."""
    read = getattr(stream, "read", None)
    source: Iterable[Any] = iter(lambda: read(_CHUNK), b"") if callable(read) else stream
    total = 0
    for chunk in source:
        if isinstance(chunk, str):
            raise InvalidInput("a blob stream must yield bytes, not str")
        if not chunk:
            continue
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise PayloadTooLarge(
                f"upload is larger than the limit of {max_bytes} bytes", max_bytes=max_bytes
            )
        yield bytes(chunk)


def _run(d: dict[str, Any]) -> Run:
    d = dict(d)
    d["metrics"] = {k: float(v) for k, v in d.get("metrics", {}).items()}
    return Run.from_dict(d)


# -- downloads -------------------------------------------------------------------------------


class _VerifiedDownload(Iterator[bytes]):
    """Chunks of a streamed download; raises IntegrityError at the end if the sha256 is wrong.

    A class rather than a generator so that the HTTP response is released even when the caller
    never starts iterating (a generator's ``finally`` only runs once it has started).
    """

    def __init__(self, response: httpx.Response, digest: str, what: str, base_url: str) -> None:
        self._response = response
        self._digest = digest
        self._what = what
        self._base_url = base_url
        self._hash = hashlib.sha256(usedforsecurity=False)
        self._chunks = response.iter_bytes(_CHUNK)
        self._done = False

    def __iter__(self) -> _VerifiedDownload:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        import httpx

        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.close()
            actual = self._hash.hexdigest()
            if actual != self._digest:
                raise IntegrityError(
                    f"{self._what} arrived corrupted: its content hashes to {actual}, the "
                    f"server announced {self._digest}; download it again",
                    digest=self._digest,
                    actual=actual,
                ) from None
            raise
        except httpx.TransportError as exc:
            self.close()
            raise Unavailable(
                f"download of {self._what} from {self._base_url} was cut off: {exc}"
            ) from None
        self._hash.update(chunk)
        return chunk

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._response.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


# -- the service -----------------------------------------------------------------------------


class RestTransport:
    """The HTTP plumbing every remote service shares: one keep-alive ``httpx.Client``, JSON
    requests, and error answers raised as their Dockyard exception classes.

    :class:`RestTrackingService` and
    :class:`~dockyard.client.rest_registry.RestRegistryService` both build on it.

    Parameters
    ----------
    base_url:
        ``http(s)://host:port`` of the server (a path prefix is kept, for proxies).
    token:
        API token, sent as ``Authorization: Bearer <token>``; never shown in reprs or errors.
    timeout:
        Seconds to wait for the server on each connect, read or write.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": "dockyard-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, follow_redirects=False
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Iterator[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One request; an error answer is raised as its Dockyard exception."""
        import httpx

        headers: dict[str, str] = {}
        data: bytes | Iterator[bytes] | None = content
        if body is not None:
            try:
                data = encode_json(body)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"cannot send this request as JSON: {exc}") from None
            headers["Content-Type"] = "application/json"
        elif content is not None:
            headers["Content-Type"] = "application/octet-stream"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            request = self._http.build_request(
                method, API + path, content=data, params=query, headers=headers
            )
            response = self._http.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"the Dockyard server at {self.base_url} did not answer within "
                f"{self.timeout} s ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the Dockyard server at {self.base_url}: {exc}"
            ) from None
        except httpx.InvalidURL as exc:
            raise InvalidInput(f"cannot build a request URL: {exc}") from None
        if response.status_code >= 400:
            try:
                if stream:
                    response.read()
            finally:
                response.close()
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> DockyardError:
        """The exception an error answer stands for (the same class the service raises)."""
        try:
            err = response.json()["error"]
            code, message = str(err["code"]), str(err["message"])
            details = err.get("details") or {}
            if not isinstance(details, dict):
                details = {"details": details}
        except Exception:
            # Not a Dockyard answer: a proxy, a load balancer or another program on that port.
            cls: type[DockyardError] = (
                Unavailable if response.status_code in (502, 503, 504) else DockyardError
            )
            return cls(
                f"{response.request.method} {self.base_url}{response.request.url.path} got HTTP "
                f"{response.status_code} without a Dockyard error body: {response.text[:200]!r}",
                status=response.status_code,
            )
        exc = error_class_for_code(code)(message)
        exc.details = details  # set after construction: a detail may be called "message"
        return exc

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()


class RestTrackingService(BatchShortcuts, RestTransport):
    """:class:`~dockyard.tracking.service.TrackingService`, spoken to a Dockyard server.

    Parameters
    ----------
    base_url:
        ``http(s)://host:port`` of the server (a path prefix is kept, for proxies).
    token:
        API token, sent as ``Authorization: Bearer <token>``; never shown in reprs or errors.
    timeout:
        Seconds to wait for the server on each connect, read or write.
    """

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, Any] | None = None) -> Experiment:
        d = self._json("POST", "/experiments", body={"name": name, "tags": _wire_map("tag", tags)})
        return Experiment.from_dict(d)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment.from_dict(
            self._json("GET", f"/experiments/{_experiment_seg(experiment_id)}")
        )

    def get_experiment_by_name(self, name: str) -> Experiment:
        if not isinstance(name, str):
            raise InvalidInput(f"experiment name must be a non-empty string, got {name!r}")
        return Experiment.from_dict(self._json("GET", f"/experiments/by-name/{_segs(name)}"))

    def resolve_experiment(self, ref: str) -> Experiment:
        """An experiment by id (all digits) or by name."""
        return Experiment.from_dict(self._json("GET", f"/experiments/resolve/{_segs(str(ref))}"))

    def get_or_create_experiment(self, name: str) -> Experiment:
        return Experiment.from_dict(
            self._json("POST", "/experiments/get-or-create", body={"name": name})
        )

    def list_experiments(
        self, stage: str = "active", max_results: int | None = None, page_token: str | None = None
    ) -> Page[Experiment]:
        d = self._json(
            "GET",
            "/experiments",
            params={"stage": stage, "max_results": max_results, "page_token": page_token},
        )
        return Page([Experiment.from_dict(x) for x in d["items"]], d["next_page_token"])

    def rename_experiment(self, experiment_id: str, new_name: str) -> Experiment:
        d = self._json(
            "PATCH", f"/experiments/{_experiment_seg(experiment_id)}", body={"name": new_name}
        )
        return Experiment.from_dict(d)

    def delete_experiment(self, experiment_id: str) -> Experiment:
        """Soft delete: the experiment and its runs stay stored and can be restored."""
        d = self._json("POST", f"/experiments/{_experiment_seg(experiment_id)}/delete")
        return Experiment.from_dict(d)

    def restore_experiment(self, experiment_id: str) -> Experiment:
        d = self._json("POST", f"/experiments/{_experiment_seg(experiment_id)}/restore")
        return Experiment.from_dict(d)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        tag = _wire_map("tag", {key: value})
        self._json(
            "POST",
            f"/experiments/{_experiment_seg(experiment_id)}/tags",
            body={"key": key, "value": tag[key]},
        )

    # -- runs --------------------------------------------------------------------------------

    def start_run(
        self,
        experiment_id: str | None = None,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        body = {
            "experiment_id": None if experiment_id is None else str(experiment_id),
            "name": name,
            "tags": _wire_map("tag", tags),
            "parent_run_id": parent_run_id,
            "start_time": _wire_int(start_time),
        }
        return _run(self._json("POST", "/runs", body=body))

    def get_run(self, run_id: str) -> Run:
        return _run(self._json("GET", f"/runs/{_run_seg(run_id)}"))

    def end_run(
        self, run_id: str, status: str | RunStatus = RunStatus.FINISHED, end_time: int | None = None
    ) -> Run:
        """End a run (also one left RUNNING by a crashed process)."""
        body = {"status": str(status), "end_time": _wire_int(end_time)}
        return _run(self._json("POST", f"/runs/{_run_seg(run_id)}/end", body=body))

    def rename_run(self, run_id: str, name: str) -> Run:
        return _run(self._json("PATCH", f"/runs/{_run_seg(run_id)}", body={"name": name}))

    def delete_run(self, run_id: str) -> Run:
        return _run(self._json("POST", f"/runs/{_run_seg(run_id)}/delete"))

    def restore_run(self, run_id: str) -> Run:
        return _run(self._json("POST", f"/runs/{_run_seg(run_id)}/restore"))

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
        body = {
            "experiment_ids": [str(e) for e in experiment_ids],
            "filter": filter,
            "order_by": list(order_by),
            "stage": stage,
            "max_results": max_results,
            "page_token": page_token,
        }
        d = self._json("POST", "/runs/search", body=body)
        return Page([_run(x) for x in d["items"]], d["next_page_token"])

    # -- params, metrics, tags, inputs -------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] | Iterable[Mapping[str, Any]] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Log metrics, params and tags in one transaction with one audit event."""
        records: list[dict[str, Any]] = []
        columns: dict[str, list[Any]] = {"keys": [], "values": [], "steps": [], "timestamps": []}
        if isinstance(metrics, list | tuple) and set(map(type, metrics)) == {Metric}:
            # The buffer's batches: transpose them in one pass when every value is a float and
            # every step and timestamp an int (checked per column); otherwise point by point.
            keys, values, timestamps, steps = zip(*metrics, strict=True)
            if set(map(type, values)) == {float} and set(map(type, timestamps)) == set(
                map(type, steps)
            ) == {int}:
                columns = {
                    "keys": list(keys),
                    "values": list(values),
                    "steps": list(steps),
                    "timestamps": list(timestamps),
                }
                metrics = ()
        for m in metrics:
            if (
                type(m) is Metric
                and type(m.value) is float
                and type(m.step) is type(m.timestamp) is int
            ):
                # The SDK's own points travel as columns: compact, and cheap on both ends.
                columns["keys"].append(m.key)
                columns["values"].append(m.value)
                columns["steps"].append(m.step)
                columns["timestamps"].append(m.timestamp)
            else:
                records.append(_wire_metric(m))
        body: dict[str, Any] = {
            "metrics": records,
            "params": _wire_map("param", params),
            "tags": _wire_map("tag", tags),
        }
        if columns["keys"]:
            body["metric_columns"] = columns
        self._json("POST", f"/runs/{_run_seg(run_id)}/batch", body=body)

    def delete_tag(self, run_id: str, key: str) -> None:
        if not isinstance(key, str):
            raise InvalidInput(f"tag key must be a non-empty string, got {key!r}")
        self._json("DELETE", f"/runs/{_run_seg(run_id)}/tags/{_segs(key)}")

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Metric]:
        if not isinstance(key, str):
            raise InvalidInput(f"metric key must be a non-empty string, got {key!r}")
        d = self._json(
            "GET",
            f"/runs/{_run_seg(run_id)}/metrics/{_segs(key)}/history",
            params={"max_results": max_results, "page_token": page_token, "layout": "columns"},
        )
        nan = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        values = [nan[v] if type(v) is str else float(v) for v in d["values"]]
        items = list(
            map(Metric._make, zip(repeat(key), values, d["timestamps"], d["steps"], strict=False))
        )
        return Page(items, d["next_page_token"])

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput | Mapping[str, Any]]) -> None:
        wire = [d.to_dict() if isinstance(d, DatasetInput) else dict(d) for d in inputs]
        self._json("POST", f"/runs/{_run_seg(run_id)}/inputs", body={"inputs": wire})

    # -- artifacts ---------------------------------------------------------------------------

    def _put(
        self, run_id: str, dest: str, stream: Iterable[bytes] | BinaryIO, max_bytes: int | None
    ) -> ArtifactFile:
        d = self._json(
            "PUT",
            f"/runs/{_run_seg(run_id)}/artifacts/{_segs(dest)}",
            content=_upload_chunks(stream, max_bytes),
        )
        return ArtifactFile.from_dict(d)

    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> ArtifactFile:
        """Store one local file under ``artifact_path/<file name>`` in the run's artifacts."""
        _run_seg(run_id)
        src = Path(local_path)
        if not src.is_file():
            raise InvalidInput(f"{local_path} is not a file")
        dest = safe_relpath(f"{artifact_path}/{src.name}" if artifact_path else src.name)
        with src.open("rb") as f:
            return self._put(run_id, dest, f, None)

    def log_artifacts(
        self, run_id: str, local_dir: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactFile]:
        """Store every file under a local folder, recursively.

        Unlike the local service, the files are recorded one request at a time: a failure
        half-way leaves the files before it logged.
        """
        _run_seg(run_id)
        folder = Path(local_dir)
        if not folder.is_dir():
            raise InvalidInput(f"{local_dir} is not a folder")
        prefix = safe_prefix(artifact_path or "")
        files = list(iter_local_folder(folder))  # refuses escaping symlinks before any upload
        if not files:
            self.get_run(run_id)  # an unknown run is still an error, as it is locally
            return []
        out: list[ArtifactFile] = []
        for rel, path in files:
            dest = safe_relpath(f"{prefix}/{rel}" if prefix else rel)
            with path.open("rb") as f:
                out.append(self._put(run_id, dest, f, None))
        return out

    def upload_artifact(
        self,
        run_id: str,
        path: str,
        stream: Iterable[bytes] | BinaryIO,
        max_bytes: int | None = None,
    ) -> ArtifactFile:
        """Store a streamed file (the server's upload route)."""
        dest = safe_relpath(path)
        if max_bytes is not None and max_bytes < 0:
            raise InvalidInput("max_bytes must be >= 0", max_bytes=max_bytes)
        return self._put(run_id, dest, stream, max_bytes)

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactFile]:
        """The direct children (files and folders) of ``path`` in the run's artifact tree."""
        safe_prefix(path)
        d = self._json("GET", f"/runs/{_run_seg(run_id)}/artifacts", params={"path": path})
        return [ArtifactFile.from_dict(x) for x in d["items"]]

    def _open(self, run_id: str, rel: str) -> tuple[ArtifactFile, _VerifiedDownload]:
        response = self._send(
            "GET", f"/runs/{_run_seg(run_id)}/artifacts/{_segs(rel)}", stream=True
        )
        digest = response.headers.get("x-dockyard-digest", "")
        length = response.headers.get("content-length", "")
        info = ArtifactFile(
            path=rel, is_dir=False, size=int(length) if length.isdigit() else None, digest=digest
        )
        what = f"artifact {rel!r} of run {run_id}"
        return info, _VerifiedDownload(response, digest, what, self.base_url)

    def open_artifact(self, run_id: str, path: str) -> tuple[ArtifactFile, Iterator[bytes]]:
        """One file's record and a chunk iterator that verifies its hash as it ends."""
        return self._open(run_id, safe_relpath(path))

    def _files_under(self, run_id: str, prefix: str) -> list[ArtifactFile]:
        files: list[ArtifactFile] = []
        pending = [prefix]
        while pending:
            for entry in self.list_artifacts(run_id, pending.pop()):
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    files.append(entry)
        if not files:
            raise NotFound(f"run {run_id} has no artifact at {prefix!r}")
        return sorted(files, key=lambda f: f.path)

    def _download_to(self, run_id: str, rel: str, target: Path) -> None:
        """Stream one file into a temporary file beside ``target``, verify, then rename."""
        _info, chunks = self._open(run_id, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
        try:
            with create_private(tmp) as out:  # 0600 while partial
                for chunk in chunks:  # raises IntegrityError at the end on a wrong hash
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            publish_mode(tmp)
            os.replace(tmp, target)
        except BaseException:
            chunks.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def download_artifacts(self, run_id: str, path: str, dest_dir: str | Path) -> Path:
        """Copy a file or folder of the run's artifacts into ``dest_dir``; returns its path."""
        _run_seg(run_id)
        prefix = safe_prefix(path)
        files = self._files_under(run_id, prefix)
        dest_root = Path(dest_dir)
        dest_root.mkdir(parents=True, exist_ok=True)
        for f in files:
            self._download_to(run_id, f.path, safe_local_destination(dest_root, f.path))
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
        given = {
            "actor": actor,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "since": since,
            "until": until,
            "max_results": limit,
            "offset": offset,
            "after": after,
        }
        params = {k: val for k, val in given.items() if val is not None}
        d = self._json("GET", "/audit", params=params)
        return [AuditEvent.from_dict(x) for x in d["items"]]

    def verify_audit_log(self) -> AuditVerification:
        return AuditVerification.from_dict(self._json("GET", "/audit/verify"))
