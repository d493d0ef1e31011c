"""The model pool: each model version an endpoint uses, loaded, warmed up and ready to batch.

:meth:`ModelPool.load` (blocking: call it from a thread) loads ``models:/<model>/<version>``
through the registry with the server's deserialisation policy (package digest verified, skops
types limited to ``DOCKYARD_TRUSTED_MODULES``, no pickle), runs the package's input example
through the same batch path the requests take (so a model that cannot answer never takes
traffic, and the first request does not pay for lazy initialisation), and caches the result
by :class:`~dockyard.core.serving_entities.ModelRef`. A :class:`ModelHandle` owns two
micro-batchers over its batch function: one on the inference thread pool for live traffic and
one on the shadow thread pool, so a slow shadow never holds a thread live traffic needs.

The batch function (:meth:`ModelHandle.predict_batch`) prepares the concatenated input once
(:meth:`LoadedModel.prepare`: types cast exactly as the signature says), predicts (and
``predict_proba`` for probabilistic classifiers) once, and splits the answers per request. If
the batch's input is refused, or the model raises on the batch, each request of the batch is
tried alone, so one bad request fails only itself: an input error is that request's 4xx, a
model error its 500 (:class:`ModelFailure`, logged with an error id).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from dockyard.core.errors import DockyardError
from dockyard.core.serving_entities import ModelRef
from dockyard.registry.packaging.errors import ModelInputError
from dockyard.serving.batcher import MicroBatcher
from dockyard.serving.inputs import Payload

__all__ = ["ModelFailure", "ModelHandle", "ModelPool", "Prediction"]

log = logging.getLogger("dockyard.serving")


class ModelFailure(Exception):
    """The model raised on a request's (valid) input: a 500 for that request, with an id."""

    def __init__(self, ref: ModelRef, exc: BaseException) -> None:
        self.error_id = uuid.uuid4().hex[:12]
        self.kind = type(exc).__name__
        super().__init__(
            f"model {ref} failed to predict ({self.kind}; error id {self.error_id}); the "
            "server log has details"
        )


@dataclass(slots=True)
class Prediction:
    """One request's answer: NumPy arrays of its rows."""

    predictions: Any
    probabilities: Any = None

    def predictions_list(self) -> list[Any]:
        return _to_list(self.predictions)

    def probabilities_list(self) -> list[Any] | None:
        return None if self.probabilities is None else _to_list(self.probabilities)


def _to_list(arr: Any) -> list[Any]:
    """JSON-ready values of an array: plain ``tolist`` for numbers (NaN becomes None), the
    slower recursive conversion only for other kinds."""
    import numpy as np

    kind = getattr(getattr(arr, "dtype", None), "kind", "O")
    if kind in "iub":
        return arr.tolist()  # type: ignore[no-any-return]
    if kind == "f" and bool(np.isfinite(arr).all()):
        return arr.tolist()  # type: ignore[no-any-return]
    from dockyard.registry.packaging.signature import json_safe

    values = arr.tolist() if hasattr(arr, "tolist") else list(arr)
    return json_safe(values)  # type: ignore[no-any-return]


def _as_array(values: Any) -> Any:
    import numpy as np

    to_numpy = getattr(values, "to_numpy", None)
    return to_numpy() if to_numpy is not None else np.asarray(values)


@dataclass(eq=False)
class ModelHandle:
    """A loaded, warmed model version and its batchers."""

    ref: ModelRef
    model: Any  # LoadedModel
    load_seconds: float = 0.0
    warm_seconds: float = 0.0
    batcher: MicroBatcher[Payload] = field(init=False)
    shadow_batcher: MicroBatcher[Payload] = field(init=False)
    _predict: Callable[[Any], Any] = field(init=False, repr=False)
    _proba: Callable[[Any], Any] | None = field(init=False, repr=False)
    #: The class labels, when the model's labels are exactly the argmax of its probabilities
    #: (then one predict_proba call gives both: the model runs once per batch, not twice).
    _labels_from_proba: Any = field(default=None, init=False, repr=False)
    _both: Callable[[Any], tuple[Any, Any]] | None = field(default=None, init=False, repr=False)

    def configure(
        self,
        executor: Executor | None,
        shadow_executor: Executor | None,
        max_rows: int,
        max_wait_ms: float,
        on_batch: Callable[[ModelRef, int, int, float], None] | None = None,
    ) -> None:
        # The adapter's own functions: the batch is prepared once by predict_batch, so the
        # public predict (which prepares again) would validate every batch twice.
        adapter = getattr(self.model, "_adapter", None)
        if adapter is not None and callable(getattr(adapter, "predict", None)):
            self._predict = adapter.predict
            self._proba = getattr(adapter, "predict_proba", None)
        else:  # pragma: no cover - any LoadedModel has an adapter
            self._predict = self.model.predict
            self._proba = getattr(self.model, "predict_proba", None)
        self._labels_from_proba = (
            argmax_classes(adapter.raw) if adapter is not None and self._proba else None
        )
        # A compiled model gives labels and probabilities from one run of its graph.
        self._both = getattr(self.model, "predict_both", None)
        cb = None if on_batch is None else (lambda i, r, s: on_batch(self.ref, i, r, s))
        self.batcher = MicroBatcher(
            self.predict_batch, executor, max_rows=max_rows, max_wait_ms=max_wait_ms, on_batch=cb
        )
        self.shadow_batcher = MicroBatcher(
            self.predict_batch, shadow_executor, max_rows=max_rows, max_wait_ms=0.0
        )

    # -- descriptive -------------------------------------------------------------------------

    @property
    def signature(self) -> dict[str, Any]:
        return self.model.signature  # type: ignore[no-any-return]

    @property
    def task(self) -> str | None:
        return self.model.task  # type: ignore[no-any-return]

    @property
    def classes(self) -> list[Any] | None:
        return self.model.classes  # type: ignore[no-any-return]

    @functools.cached_property
    def classes_json(self) -> list[Any] | None:
        """:attr:`classes` as JSON values (computed once: answers carry them)."""
        if not self.classes:
            return None
        from dockyard.registry.packaging.signature import json_safe

        return json_safe(list(self.classes))  # type: ignore[no-any-return]

    @property
    def has_proba(self) -> bool:
        return self._proba is not None

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification" or bool(self.classes)

    # -- prediction (runs in a worker thread) ------------------------------------------------

    def _prepare(self, items: Sequence[Payload]) -> Any:
        if items[0].columns is not None:
            if len(items) == 1:
                merged = items[0].columns
            else:
                merged = {k: [v for it in items for v in it.columns[k]] for k in items[0].columns}  # type: ignore[index]
            return self.model.prepare(merged)
        import numpy as np

        arr = items[0].array if len(items) == 1 else np.concatenate([it.array for it in items])
        return self.model.prepare(arr)

    @property
    def runtime(self) -> str:
        """What answers: ``onnxruntime`` for a compiled model, else the package's flavor."""
        return str(getattr(self.model, "runtime", None) or self.model.flavor)

    def _run(self, data: Any) -> tuple[Any, Any]:
        if self._both is not None:
            return self._both(data)
        if self._labels_from_proba is not None:
            assert self._proba is not None
            proba = _as_array(self._proba(data))
            return self._labels_from_proba[proba.argmax(axis=1)], proba
        pred = _as_array(self._predict(data))
        proba = _as_array(self._proba(data)) if self._proba is not None else None
        return pred, proba

    def predict_batch(self, items: Sequence[Payload]) -> list[Prediction | BaseException]:
        """One prediction per item (or the item's own exception); see the module notes."""
        try:
            data = self._prepare(items)
        except ModelInputError:
            if len(items) == 1:
                raise
            return [self._one(it) for it in items]
        try:
            pred, proba = self._run(data)
        except Exception as exc:
            if len(items) > 1:
                return [self._one(it) for it in items]
            return [self._failure(exc)]
        out: list[Prediction | BaseException] = []
        start = 0
        for it in items:
            end = start + it.rows
            out.append(Prediction(pred[start:end], None if proba is None else proba[start:end]))
            start = end
        if start != len(pred):
            return [
                self._failure(
                    RuntimeError(f"the model returned {len(pred)} predictions for {start} rows")
                )
            ] * len(items)
        return out

    def _one(self, item: Payload) -> Prediction | BaseException:
        try:
            data = self._prepare([item])
        except ModelInputError as exc:
            return exc
        except Exception as exc:
            return self._failure(exc)
        try:
            pred, proba = self._run(data)
        except Exception as exc:
            return self._failure(exc)
        return Prediction(pred, proba)

    def _failure(self, exc: BaseException) -> ModelFailure:
        failure = ModelFailure(self.ref, exc)
        log.error(
            "model %s failed on a batch (error id %s): %s",
            self.ref,
            failure.error_id,
            exc.message if isinstance(exc, DockyardError) else type(exc).__name__,
            exc_info=exc,
        )
        return failure

    def warm_up(self) -> None:
        """Predict the package's input example through the batch path; raises if it fails."""
        example = self.model.input_example
        if example is None:
            log.info("model %s has no input example: not warmed up", self.ref)
            return
        started = time.perf_counter()
        if isinstance(example, dict):  # a compiled model's example, as JSON
            if "columns" in example:
                cols = example["columns"]
                payload = Payload(rows=len(next(iter(cols.values()))), columns=cols)
            else:
                payload = Payload(rows=len(example["rows"]), array=example["rows"])
        elif (
            hasattr(example, "to_dict")
            and (self.signature.get("inputs") or {}).get("kind") == "columns"
        ):
            cols = {str(k): list(v) for k, v in example.to_dict("list").items()}
            payload = Payload(rows=len(example), columns=cols)
        else:
            payload = Payload(rows=len(example), array=self.model.prepare(example))
        [result] = self.predict_batch([payload])
        if isinstance(result, BaseException):
            raise result
        self.warm_seconds = time.perf_counter() - started


class ModelPool:
    """Loaded models by reference; thread-safe; one load per reference at a time."""

    def __init__(
        self,
        load_fn: Callable[[ModelRef], Any],
        *,
        executor: Executor | None = None,
        shadow_executor: Executor | None = None,
        max_batch_rows: int = 256,
        max_wait_ms: float = 0.0,
        on_batch: Callable[[ModelRef, int, int, float], None] | None = None,
        on_load: Callable[[ModelHandle], None] | None = None,
    ) -> None:
        self._load_fn = load_fn
        self.executor = executor
        self.shadow_executor = shadow_executor
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = max_wait_ms
        self.on_batch = on_batch
        self.on_load = on_load
        self._handles: dict[ModelRef, ModelHandle] = {}
        self._lock = threading.Lock()
        self._loading: dict[ModelRef, threading.Lock] = {}

    def get(self, ref: ModelRef) -> ModelHandle | None:
        return self._handles.get(ref)

    def refs(self) -> set[ModelRef]:
        return set(self._handles)

    def load(self, ref: ModelRef) -> ModelHandle:
        """The handle of ``ref``, loading and warming it first when needed (blocking)."""
        handle = self._handles.get(ref)
        if handle is not None:
            return handle
        with self._lock:
            lock = self._loading.setdefault(ref, threading.Lock())
        with lock:
            handle = self._handles.get(ref)
            if handle is not None:
                return handle
            handle = self._build(ref)
            with self._lock:
                self._handles[ref] = handle
                self._loading.pop(ref, None)
            if self.on_load is not None:
                self.on_load(handle)
            return handle

    def replace(self, ref: ModelRef) -> ModelHandle | None:
        """Load ``ref`` again (a compiled form appeared, say) and put the new handle in the old
        one's place; requests holding the old handle finish on it. None when ``ref`` is no
        longer served."""
        if ref not in self._handles:
            return None
        handle = self._build(ref)
        with self._lock:
            if ref not in self._handles:
                return None
            self._handles[ref] = handle
        if self.on_load is not None:
            self.on_load(handle)
        return handle

    def _build(self, ref: ModelRef) -> ModelHandle:
        started = time.perf_counter()
        model = self._load_fn(ref)
        handle = ModelHandle(ref, model, load_seconds=time.perf_counter() - started)
        handle.configure(
            self.executor,
            self.shadow_executor,
            self.max_batch_rows,
            self.max_wait_ms,
            self.on_batch,
        )
        handle.warm_up()
        log.info(
            "loaded model %s on %s in %.0f ms (warm-up %.0f ms)",
            ref,
            handle.runtime,
            handle.load_seconds * 1000,
            handle.warm_seconds * 1000,
        )
        return handle

    def retain(self, refs: set[ModelRef]) -> list[ModelRef]:
        """Forget every model not in ``refs`` (requests holding its handle still finish on
        it); returns the references dropped."""
        with self._lock:
            gone = [r for r in self._handles if r not in refs]
            for r in gone:
                del self._handles[r]
        for r in gone:
            log.info("unloaded model %s", r)
        return gone


#: Classifiers whose ``predict`` is, by construction, ``classes_[argmax(predict_proba)]``
#: (ties included: both pick the first class). For these the server runs the model once per
#: batch and derives the labels; any other model is asked for both.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.naive_bayes.GaussianNB",
    }
)


def argmax_classes(raw: Any) -> Any:
    """The final estimator's ``classes_`` when its labels are the argmax of its probabilities
    (a scikit-learn Pipeline is looked through), else None."""
    final = raw
    steps = getattr(raw, "steps", None)
    if isinstance(steps, list) and steps:
        final = steps[-1][1]
    cls = type(final)
    if f"{cls.__module__}.{cls.__qualname__}" not in _ARGMAX_CLASSIFIERS:
        return None
    classes = getattr(final, "classes_", None)
    if classes is None or getattr(classes, "ndim", 0) != 1:
        return None  # multi-output: keep predict
    return classes
