"""Serving scikit-learn models from their compiled (ONNX Runtime) form.

``DOCKYARD_SERVE_RUNTIME=auto`` (the default): when a model version's package has a compiled
form in the server's cache (``<cache>/compiled/<package digest>/``, made and checked by
:mod:`dockyard.serving.compile`), the server answers from it with ONNX Runtime. It then
imports neither scikit-learn nor SciPy, pandas or skops: `dockyard serve` is ready in about
0.7 s instead of 2.5 s, and a batch of sixteen 1-row requests costs about 0.05 ms of model
time instead of 5 ms. When there is none, the server loads the model natively and, if
skl2onnx and ONNX Runtime are installed (``pip install 'dockyard[onnx]'``), compiles it in a
background process at low priority; when the compiled model passes its check, the server
swaps it in like a new policy (in-flight requests finish on the native one), and later
starts use it at once. ``DOCKYARD_SERVE_RUNTIME=native`` never compiles nor uses a compiled
form. ``dockyard serve --prepare`` compiles ahead (for an image build or a benchmark).

What a compiled model answers is what the native model answers: the compile step refuses a
model whose compiled answers differ on any checked row (labels exactly; probabilities and
values within 1e-5). The check runs the input example and about two thousand rows made from
it, not every possible input: a value within float32 precision of a tree's split threshold
can in principle take the other branch. ``DOCKYARD_SERVE_RUNTIME=native`` is the choice when
bit-for-bit scikit-learn answers matter more than speed.

Requests are checked against the same signature with the same rules. Plain JSON columns (the
common case) are cast here straight to the arrays ONNX Runtime takes; anything else (a
category column with a value outside its categories, a missing value, a string number...)
takes the package's own validation path, which imports pandas on first use.

The compiled folder is written by the server into its private cache (0700). ``compiled.json``
binds it to the package digest and records the ONNX file's sha256, checked on every load; an
ONNX file holds no code (ONNX Runtime runs only its built-in operators here), so a damaged or
altered folder can at worst be refused and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dockyard.registry.packaging.flavors.base import Adapter, dist_version
from dockyard.registry.packaging.signature import (
    columns_each,
    int_bounds,
    plain_values,
    prepare_input,
    prepare_tensor,
)

__all__ = [
    "CompileState",
    "CompiledModel",
    "Compiler",
    "ModelLoader",
    "compiled_root",
    "feeds_from_frame",
    "read_compiled",
]

log = logging.getLogger("dockyard.serving")

#: Bumped when the compiled folder's layout or the conversion changes: a server ignores (and
#: rebuilds) a folder of another format.
FORMAT: Final = 1
RECORD: Final = "compiled.json"
ONNX_FILE: Final = "model.onnx"
RUNTIMES: Final = ("auto", "native")
_TIE: Final = 1e-6


def compiled_root(cache_dir: Path) -> Path:
    """Where compiled forms live beside the package cache ``cache_dir``."""
    return cache_dir.parent / "compiled"


# -- the compiled model ------------------------------------------------------------------------


def feeds_from_frame(data: Any, kinds: Mapping[str, str]) -> dict[str, Any]:
    """ONNX Runtime inputs for a prepared DataFrame (or a 2-D array for a single ``X``):
    strings as an object tensor (missing values as ``""``, which no fitted encoder knows),
    everything else as float64 with NaN for missing."""
    import numpy as np

    if list(kinds) == ["X"] and not hasattr(data, "columns"):
        return {"X": np.asarray(data, dtype=np.float64)}
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        col = data[name]
        if kind == "string":
            values = np.array(
                ["" if v is None or v != v else str(v) for v in col.astype(object).to_numpy()],
                dtype=object,
            )
        else:
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        out[name] = values.reshape(-1, 1)
    return out


def _fast_feed(spec: Mapping[str, Any], values: list[Any], np: Any) -> Any:
    """One column of plain JSON values as the ONNX input, or None for the full path: only
    values the package's validation takes as they are (:func:`plain_values`, the rule its
    own fast path uses), cast to the same value."""
    typ = spec["type"]
    dtype = spec.get("dtype")
    if typ in ("double", "float"):
        if dtype not in ("float64", "float32", None) or not plain_values(spec, values):
            return None
        arr = np.array(values, dtype=np.float32 if dtype == "float32" else np.float64)
        return arr.astype(np.float64, copy=False).reshape(-1, 1)
    if typ in ("long", "integer"):
        if dtype not in ("int64", "int32", "int16", "int8", None):
            return None
        lo, hi = int_bounds(typ, dtype or ("int64" if typ == "long" else "int32"), np)
        if not plain_values(spec, values, lo, hi):
            return None
        return np.array(values, dtype=np.float64).reshape(-1, 1)
    if typ == "boolean":
        if dtype not in ("bool", None) or not plain_values(spec, values):
            return None
        return np.array(values, dtype=np.float64).reshape(-1, 1)
    if typ == "string":
        return np.array(values, dtype=object).reshape(-1, 1) if plain_values(spec, values) else None
    if typ == "category":
        known = spec.get("categories")
        if not isinstance(known, list):
            return None
        allowed = set(known)
        for v in values:
            if type(v) is not str or v not in allowed:
                return None  # the full path turns unknown values into missing ones
        return np.array(values, dtype=object).reshape(-1, 1)
    return None


class CompiledModel:
    """A model version answered by ONNX Runtime: what :class:`~dockyard.serving.pool.ModelHandle`
    uses of a ``LoadedModel`` (``prepare``, the adapter, the descriptive properties)."""

    runtime = "onnxruntime"

    def __init__(self, manifest: Any, session: Any, record: Mapping[str, Any]) -> None:
        self.manifest = manifest
        self.record = dict(record)
        self._kinds: dict[str, str] = dict(record["inputs"])
        self._warned: set[str] = set()
        names = [o.name for o in session.get_outputs()]
        has_proba = "probabilities" in names
        run = session.run

        def feeds(data: Any) -> Any:  # a tensor model's batch is one prepared array
            return data if isinstance(data, dict) else {"X": data.astype("float64", copy=False)}

        # The labels of the classifiers scikit-learn labels by classes_[argmax(probabilities)]
        # (record "labels": "argmax") are derived the same way, ties to the first class. A tie
        # is within 1e-6: a forest's votes (10 of 20 trees: 0.5 and 0.5 in scikit-learn) sum
        # to 0.49999994 and 0.50000006 in float32, and ONNX Runtime's own label, or a plain
        # argmax, would answer the other class.
        import numpy as np

        argmax = record.get("labels") == "argmax" and has_proba and bool(manifest.classes)
        labels_of = np.asarray(manifest.classes) if argmax else None

        def predict_both(data: Any) -> tuple[Any, Any]:
            if labels_of is not None:
                proba = run(["probabilities"], feeds(data))[0]
                top = proba >= proba.max(axis=1, keepdims=True) - _TIE
                return labels_of[top.argmax(axis=1)], proba
            label, proba = run([names[0], "probabilities"], feeds(data))
            return label.reshape(-1), proba

        def predict(data: Any) -> Any:
            if labels_of is not None:
                return predict_both(data)[0]
            return run([names[0]], feeds(data))[0]

        def predict_proba(data: Any) -> Any:
            return run(["probabilities"], feeds(data))[0]

        self._adapter = Adapter(
            raw=session, predict=predict, predict_proba=predict_proba if has_proba else None
        )
        self.predict_both: Callable[[Any], tuple[Any, Any]] | None = (
            predict_both if has_proba else None
        )

    # -- what a LoadedModel offers --------------------------------------------------------------

    @property
    def raw(self) -> Any:
        return self._adapter.raw

    @property
    def flavor(self) -> str:
        return self.manifest.flavor  # type: ignore[no-any-return]

    @property
    def task(self) -> str | None:
        return self.manifest.task  # type: ignore[no-any-return]

    @property
    def signature(self) -> dict[str, Any]:
        return self.manifest.signature  # type: ignore[no-any-return]

    @property
    def classes(self) -> list[Any] | None:
        return self.manifest.classes  # type: ignore[no-any-return]

    @property
    def digest(self) -> str:
        return self.manifest.digest  # type: ignore[no-any-return]

    @property
    def input_example(self) -> Any:
        """The warm-up example as JSON: ``{"columns": {...}}`` or ``{"rows": [...]}``."""
        example = self.record.get("example")
        if isinstance(example, dict) and "rows" in example:
            return {"rows": self.prepare(example["rows"])}
        return example

    def __repr__(self) -> str:
        return f"<CompiledModel {self.flavor} on onnxruntime ({self.digest[:12]})>"

    def prepare(self, data: Any) -> Any:
        """Validate ``data`` against the signature: the ONNX Runtime inputs of a columns
        model, the checked array of a tensor model (batches of them are concatenated)."""
        import numpy as np

        schema = self.signature.get("inputs") or {}
        if schema.get("kind") == "tensor":
            return prepare_tensor(schema, data)
        if schema.get("kind") == "columns" and isinstance(data, Mapping):
            feeds = columns_each(
                schema["columns"], data, lambda spec, values: _fast_feed(spec, values, np)
            )
            if feeds is not None:
                return feeds
        prepared = prepare_input(schema, data, warned=self._warned)
        return feeds_from_frame(prepared, self._kinds)

    def predict(self, data: Any) -> Any:
        return self._adapter.predict(self.prepare(data))


# -- reading the cache --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompileState:
    """What the cache holds for one package: a compiled model, a recorded refusal, or nothing."""

    model: CompiledModel | None = None
    reason: str | None = None
    compile: bool = True  # worth (re)compiling


def read_compiled(package_path: Path, digest: str, root: Path, *, threads: int = 1) -> CompileState:
    """The compiled form of the package at ``package_path`` (already verified), if the cache
    holds a sound one and ONNX Runtime is installed."""
    folder = root / digest
    try:
        record = json.loads((folder / RECORD).read_text())
    except FileNotFoundError:
        return CompileState(reason="not compiled yet")
    except (OSError, ValueError):
        return CompileState(reason="its compiled record is unreadable")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return CompileState(reason="compiled by another Dockyard version")
    if record.get("package_digest") != digest:
        return CompileState(reason="its compiled record is for another package")
    if record.get("status") != "compiled":
        # Tried again when asked to, or when another skl2onnx would convert it.
        built_with = (record.get("versions") or {}).get("skl2onnx")
        return CompileState(
            reason=str(record.get("reason") or "not compilable"),
            compile=bool(record.get("retry")) or built_with != dist_version("skl2onnx"),
        )
    try:
        import onnxruntime as ort
    except ImportError:
        return CompileState(reason="onnxruntime is not installed", compile=False)
    try:
        data = (folder / ONNX_FILE).read_bytes()
    except OSError:
        return CompileState(reason="its compiled file is missing")
    if hashlib.sha256(data).hexdigest() != record.get("onnx_sha256"):
        log.warning("compiled model %s does not match its record: rebuilding it", folder)
        return CompileState(reason="its compiled file was altered")
    from dockyard.registry.packaging.manifest import read_manifest

    manifest = read_manifest(package_path)
    if manifest.digest != digest:  # pragma: no cover - the cache verified the folder
        return CompileState(reason="the package folder changed", compile=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # an ONNX Runtime that cannot run it: serve natively
        return CompileState(reason=f"ONNX Runtime cannot open it ({type(exc).__name__})")
    return CompileState(model=CompiledModel(manifest, session, record))


def can_compile() -> bool:
    """skl2onnx and ONNX Runtime are installed (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("skl2onnx", "onnxruntime"))


# -- compiling in the background -------------------------------------------------------------------


class Compiler:
    """Compiles packages one at a time in a child process (``python -m
    dockyard.serving.compile``, niced), off the server's interpreter; calls ``on_done(key,
    record)`` from its thread when one finishes."""

    def __init__(
        self,
        root: Path,
        *,
        trusted_modules: list[str] | tuple[str, ...] | None,
        on_done: Callable[[Any, dict[str, Any]], None] | None = None,
        timeout: float = 900.0,
    ) -> None:
        self.root = root
        self.trusted_modules = trusted_modules
        self.on_done = on_done
        self.timeout = timeout
        self._pending: dict[str, tuple[Any, Path]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None

    def submit(self, key: Any, package_path: Path, digest: str) -> None:
        """Compile ``digest`` (once, whatever how many models share it)."""
        with self._lock:
            if self._stopped or digest in self._pending:
                return
            self._pending[digest] = (key, package_path)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="dockyard-compile", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            proc = self._proc
        self._wake.set()
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _work(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                if self._stopped:
                    return
                if not self._pending:
                    self._wake.clear()
                    continue
                digest, (key, path) = next(iter(self._pending.items()))
            record = self.run(path, digest)
            with self._lock:
                self._pending.pop(digest, None)
                if self._stopped:
                    return
            if self.on_done is not None:
                try:
                    self.on_done(key, record)
                except Exception:  # pragma: no cover - logged, never kills the thread
                    log.exception("handling the compiled model %s failed", key)

    def run(self, package_path: Path, digest: str) -> dict[str, Any]:
        """Compile in a child process and wait for it; the record it wrote (or an error)."""
        cmd = [
            sys.executable,
            "-m",
            "dockyard.serving.compile",
            "--package",
            str(package_path),
            "--digest",
            digest,
            "--out",
            str(self.root / digest),
        ]
        if self.trusted_modules is not None:
            cmd += ["--trusted-modules", ",".join(self.trusted_modules)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        try:
            with self._lock:
                if self._stopped:
                    return {"status": "error", "reason": "the server is stopping"}
                self._proc = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                )
            out, err = self._proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            assert self._proc is not None
            self._proc.kill()
            self._proc.communicate()
            return {"status": "error", "reason": f"compiling took over {self.timeout:.0f} s"}
        except OSError as exc:
            return {"status": "error", "reason": f"cannot start the compiler ({exc})"}
        finally:
            with self._lock:
                self._proc = None
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            tail = " ".join(err.strip().splitlines()[-1:])[:300]
            return {"status": "error", "reason": f"the compiler failed ({tail or 'no output'})"}
        try:
            record = json.loads(lines[-1])
        except ValueError:
            return {"status": "error", "reason": "the compiler's report is unreadable"}
        return record if isinstance(record, dict) else {"status": "error", "reason": "?"}


# -- the server's load function ------------------------------------------------------------------


class ModelLoader:
    """Load a model version for serving: its compiled form when the cache holds a sound one
    (``runtime="auto"``), else the package natively, then compile it in the background
    (scikit-learn models, when skl2onnx and ONNX Runtime are installed) and call
    ``on_compiled(ref)`` from the compiler's thread once its compiled form passed its check."""

    def __init__(
        self,
        registry: Any,
        *,
        runtime: str = "auto",
        threads: int = 1,
        on_native: Callable[[Any], None] | None = None,
        on_compiled: Callable[[Any], None] | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        self.registry = registry
        self.runtime = runtime
        self.threads = threads
        self.on_native = on_native
        self.on_compiled = on_compiled
        self.root = compiled_root(Path(registry.cache_dir))
        self.compiler: Compiler | None = None
        if runtime == "auto" and can_compile():
            self.compiler = Compiler(
                self.root, trusted_modules=registry.trusted_modules, on_done=self._done
            )

    def __call__(self, ref: Any) -> Any:
        mv, path = self.registry.package(f"models:/{ref.model}/{ref.version}")
        state: CompileState | None = None
        if self.runtime == "auto":
            state = read_compiled(path, mv.package_digest, self.root, threads=self.threads)
            if state.model is not None:
                return state.model
        from dockyard.registry import packaging

        model = packaging.load_model(
            path, expected_digest=mv.package_digest, trusted_modules=self.registry.trusted_modules
        )
        if self.on_native is not None:
            self.on_native(model)
        if state is not None and model.flavor == "sklearn":
            if state.compile and self.compiler is not None:
                log.info("model %s runs natively; compiling it in the background", ref)
                self.compiler.submit(ref, path, mv.package_digest)
            elif not state.compile:
                log.info("model %s runs natively (%s)", ref, state.reason)
        return model

    def _done(self, ref: Any, record: dict[str, Any]) -> None:
        if record.get("status") != "compiled":
            log.warning(
                "model %s stays on scikit-learn: %s", ref, record.get("reason", "not compiled")
            )
            return
        check = record.get("check") or {}
        log.info(
            "compiled model %s to ONNX Runtime in %.1f s: same answers on %s checked rows "
            "(largest probability difference %.1e); swapping it in",
            ref,
            float(record.get("seconds") or 0.0),
            check.get("rows", "?"),
            float(check.get("max_probability_difference", check.get("max_difference", 0.0))),
        )
        if self.on_compiled is not None:
            self.on_compiled(ref)

    def close(self) -> None:
        if self.compiler is not None:
            self.compiler.stop()


def prepare(settings: Any, endpoints: list[str] | None = None) -> list[dict[str, Any]]:
    """``dockyard serve --prepare``: fill the package cache with every model the endpoints
    serve (all endpoints when None) and compile the scikit-learn ones, in this process, as
    the server would in the background. One row per model version."""
    from dockyard.backend import Backend
    from dockyard.core.errors import NotFound
    from dockyard.governance.audit import Actor
    from dockyard.governance.permissions import Authorizer
    from dockyard.registry import packaging
    from dockyard.serving.compile import compile_package

    backend = Backend.open(settings)
    try:
        actor = Actor("dockyard-serve", authorizer=Authorizer.allow_all("dockyard-serve"))
        registry = backend.registry(actor, server=True)
        root = compiled_root(Path(registry.cache_dir))
        names = endpoints or sorted(backend.store.read(lambda u: u.endpoint_versions()))
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for name in names:
            ep = backend.store.read(lambda u, n=name: u.get_endpoint(n))
            if ep is None:
                raise NotFound(f"endpoint {name!r} does not exist", endpoint=name)
            for variant, ref in sorted(ep.policy.refs().items()):
                mv, path = registry.package(f"models:/{ref.model}/{ref.version}")
                row: dict[str, Any] = {
                    "endpoint": name,
                    "variant": variant,
                    "model": f"{ref.model}/{ref.version}",
                }
                state = read_compiled(path, mv.package_digest, root)
                if state.model is None and mv.package_digest not in seen and state.compile:
                    flavor = packaging.read_manifest(path).flavor
                    if flavor == "sklearn" and can_compile():
                        compile_package(
                            path,
                            root / mv.package_digest,
                            digest=mv.package_digest,
                            trusted_modules=registry.trusted_modules,
                        )
                        state = read_compiled(path, mv.package_digest, root)
                    elif flavor == "sklearn":
                        state = CompileState(
                            reason="skl2onnx and onnxruntime are not installed "
                            "(pip install 'dockyard[serving]')"
                        )
                    else:
                        state = CompileState(reason=f"flavor {flavor!r} runs as it is")
                seen.add(mv.package_digest)
                if state.model is not None:
                    check = state.model.record.get("check") or {}
                    row.update(
                        runtime="onnxruntime",
                        checked_rows=check.get("rows"),
                        max_difference=check.get(
                            "max_probability_difference", check.get("max_difference")
                        ),
                    )
                else:
                    row.update(runtime="native", reason=state.reason)
                rows.append(row)
        return rows
    finally:
        backend.close()
