"""The endpoint runtime with a fake store and fake models: load first then swap, in-flight
requests finish on their model, a failed load keeps the old policy, shadows stay off the
caller's path."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from dockyard.core.errors import NotFound, Unavailable
from dockyard.core.serving_entities import Endpoint, ModelRef, TrafficPolicy
from dockyard.serving.inputs import payload_from_json
from dockyard.serving.pool import ModelPool
from dockyard.serving.runtime import EndpointRuntime
from dockyard.serving.shadow import ShadowDispatcher

SIG = {
    "inputs": {
        "kind": "columns",
        "columns": [{"name": "x", "type": "double", "nullable": True, "dtype": "float64"}],
    },
    "outputs": None,
    "classes": None,
}


@dataclass
class _Adapter:
    owner: FakeModel

    def predict(self, frame: Any) -> Any:
        import numpy as np

        self.owner.calls += 1
        if self.owner.gate is not None and len(frame) == 1:
            self.owner.gate.wait(10)
        if self.owner.fail:
            raise RuntimeError("boom")
        return np.full(len(frame), self.owner.answer, dtype="float64")

    predict_proba = None


@dataclass
class FakeModel:
    answer: float
    gate: threading.Event | None = None
    fail: bool = False
    calls: int = 0
    signature: dict[str, Any] = field(default_factory=lambda: SIG)
    task: str = "regression"
    classes: Any = None
    flavor: str = "fake"

    def __post_init__(self) -> None:
        self._adapter = _Adapter(self)

    @property
    def input_example(self) -> Any:
        import pandas as pd

        return pd.DataFrame({"x": [1.0, 2.0]})

    def prepare(self, data: Any) -> Any:
        import pandas as pd

        return pd.DataFrame({"x": list(data["x"])}, dtype="float64")


class FakeStore:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    def put(self, name: str, policy: TrafficPolicy) -> None:
        cur = self.endpoints.get(name)
        version = 1 if cur is None else cur.version + 1
        self.endpoints[name] = Endpoint(name, "", 0, "t", 0, version, policy)

    def read(self, fn: Any) -> Any:
        return fn(self)

    def endpoint_versions(self) -> dict[str, int]:
        return {n: e.version for n, e in self.endpoints.items()}

    def get_endpoint(self, name: str) -> Endpoint | None:
        return self.endpoints.get(name)


def _single(version: int, **shadows: int) -> TrafficPolicy:
    return TrafficPolicy(
        primary="main",
        variants={"main": ModelRef("m", version)},
        weights={"main": 100},
        shadows={k: ModelRef("m", v) for k, v in shadows.items()},
        salt="s",
    )


def _runtime(models: dict[int, FakeModel], **kw: Any) -> tuple[EndpointRuntime, FakeStore]:
    def load(ref: ModelRef) -> FakeModel:
        model = models[ref.version]
        if model.fail and model.answer < 0:
            raise RuntimeError("cannot load")
        return model

    pool = ModelPool(load, executor=ThreadPoolExecutor(4), shadow_executor=ThreadPoolExecutor(2))
    store = FakeStore()
    return EndpointRuntime(store, pool, poll_seconds=0.01, **kw), store


async def _ask(rt: EndpointRuntime, endpoint: str = "ep") -> Any:
    return await rt.infer(
        endpoint,
        lambda h: payload_from_json([{"x": 1.0}], h.model),
        request_id="r",
        arrived_ms=0,
        started=time.perf_counter(),
    )


def test_in_flight_requests_finish_on_their_model_and_new_ones_use_the_new_one() -> None:
    gate = threading.Event()
    models = {1: FakeModel(1.0, gate=gate), 2: FakeModel(2.0)}
    rt, store = _runtime(models)

    async def main() -> tuple[Any, Any, int]:
        store.put("ep", _single(1))
        await rt.refresh()
        assert rt.ready
        slow = asyncio.ensure_future(_ask(rt))
        await asyncio.sleep(0.05)  # it is predicting on model 1, blocked on the gate
        store.put("ep", _single(2))
        await rt.refresh()  # loads and warms 2, then swaps
        new = await _ask(rt)
        gate.set()
        old = await slow
        return old, new, rt.tables["ep"].version

    old, new, version = asyncio.run(main())
    assert (old.ref.version, old.predictions) == (1, [1.0])
    assert (new.ref.version, new.predictions) == (2, [2.0])
    assert version == 2 and rt.pool.refs() == {ModelRef("m", 2)}


def test_a_failed_load_keeps_the_old_policy_and_unknown_endpoints_are_404() -> None:
    models = {1: FakeModel(1.0), 2: FakeModel(-1.0, fail=True)}
    rt, store = _runtime(models)

    async def main() -> Any:
        with pytest.raises(Unavailable):  # not polled yet: loading
            await _ask(rt)
        store.put("ep", _single(1))
        await rt.refresh()
        store.put("ep", _single(2))
        await rt.refresh()
        assert rt.tables["ep"].version == 1 and rt.ready
        with pytest.raises(NotFound):
            await _ask(rt, "nope")
        return await _ask(rt)

    assert asyncio.run(main()).predictions == [1.0]


def test_a_model_that_fails_warm_up_never_takes_traffic() -> None:
    models = {1: FakeModel(1.0, fail=True)}
    rt, store = _runtime(models)

    async def main() -> None:
        store.put("ep", _single(1))
        await rt.refresh()
        assert not rt.ready and "ep" not in rt.tables
        with pytest.raises(Unavailable, match="not ready"):
            await _ask(rt)

    asyncio.run(main())


def test_a_slow_or_failing_shadow_does_not_hold_the_caller() -> None:
    gate = threading.Event()  # the shadow blocks until the end of the test
    models = {1: FakeModel(1.0), 2: FakeModel(2.0, gate=gate), 3: FakeModel(3.0, fail=True)}
    shadows = ShadowDispatcher(timeout=0.2, workers=2)
    models[3].fail = False  # load and warm up fine ...
    rt, store = _runtime(models, shadows=shadows)

    async def main() -> list[Any]:
        await rt.start()
        store.put("ep", _single(1, slow=2, bad=3))
        while not rt.ready:
            await asyncio.sleep(0.01)
        models[3].fail = True  # ... then fail on every request
        answers = [await _ask(rt) for _ in range(5)]
        while shadows.done < 4:  # timeouts and failures are counted, not raised
            await asyncio.sleep(0.05)
        gate.set()
        await rt.stop()
        return answers

    answers = asyncio.run(main())
    assert [a.predictions for a in answers] == [[1.0]] * 5
