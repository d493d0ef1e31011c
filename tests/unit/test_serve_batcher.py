"""The micro-batcher and the per-request input checks of the inference server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from dockyard.registry.packaging.errors import ModelInputError
from dockyard.serving.batcher import MicroBatcher
from dockyard.serving.inputs import check_columns, payload_from_json


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_requests_coalesce_and_run_off_the_event_loop() -> None:
    calls: list[list[int]] = []
    threads: set[int] = set()

    def fn(items: Sequence[int]) -> list[int]:
        threads.add(threading.get_ident())
        calls.append(list(items))
        time.sleep(0.05)
        return [i * 10 for i in items]

    async def main() -> list[int]:
        b: MicroBatcher[int] = MicroBatcher(fn, None, max_rows=100)
        first = asyncio.ensure_future(b.submit(0))
        await asyncio.sleep(0.01)  # idle: 0 went alone, at once; the rest arrive meanwhile
        rest = await asyncio.gather(*(b.submit(i) for i in range(1, 20)))
        return [await first, *rest]

    loop_thread = threading.get_ident()
    results = _run(main())
    assert results == [i * 10 for i in range(20)]
    assert calls == [[0], list(range(1, 20))]
    assert loop_thread not in threads


def test_max_rows_bounds_a_batch() -> None:
    sizes: list[int] = []

    def fn(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.01)
        return list(items)

    async def main() -> None:
        b: MicroBatcher[int] = MicroBatcher(fn, None, max_rows=8)
        await asyncio.gather(*(b.submit(i, rows=2) for i in range(40)))

    _run(main())
    assert max(sizes) <= 4 and sum(sizes) == 40


def test_an_item_error_fails_that_item_and_a_batch_error_only_that_batch() -> None:
    def fn(items: Sequence[int]) -> list[Any]:
        if 99 in items:
            raise RuntimeError("boom")
        return [ValueError(f"bad {i}") if i % 2 else i for i in items]

    async def main() -> list[Any]:
        b: MicroBatcher[int] = MicroBatcher(fn, None)
        first = await asyncio.gather(*(b.submit(i) for i in range(6)), return_exceptions=True)
        boom = await asyncio.gather(b.submit(99), return_exceptions=True)
        after = await b.submit(4)
        return [first, boom, after]

    first, boom, after = _run(main())
    assert [r for r in first if not isinstance(r, Exception)] == [0, 2, 4]
    assert all(isinstance(r, ValueError) for r in first[1::2])
    assert isinstance(boom[0], RuntimeError) and after == 4


def test_a_cancelled_caller_is_skipped() -> None:
    seen: list[int] = []

    def fn(items: Sequence[int]) -> list[int]:
        seen.extend(items)
        time.sleep(0.05)
        return list(items)

    async def main() -> int:
        b: MicroBatcher[int] = MicroBatcher(fn, None)
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.01)  # 1 is running
        gone = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        kept = await b.submit(3)
        await first
        return kept

    assert _run(main()) == 3
    assert 2 not in seen


def test_a_busy_batcher_holds_the_batch_while_the_loop_takes_in_requests() -> None:
    calls: list[list[int]] = []

    def fn(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        time.sleep(0.03)
        return list(items)

    async def main() -> None:
        b: MicroBatcher[int] = MicroBatcher(fn, None, max_rows=100, max_wait_ms=1)
        # A batch of 3 requests: the batcher is busy from now on.
        await asyncio.gather(b.submit(-1), b.submit(-2), b.submit(-3))

        async def arrivals() -> list[int]:
            # Requests read one by one by a busy loop (each takes it 1 ms), for longer than
            # max_wait but less than the last batch took: they all make one batch.
            futs = []
            for i in range(8):
                time.sleep(0.001)  # the loop parsing a request
                futs.append(asyncio.ensure_future(b.submit(i)))
                await asyncio.sleep(0)
            return list(await asyncio.gather(*futs))

        assert await arrivals() == list(range(8))

    _run(main())
    assert calls == [[-1, -2, -3], list(range(8))]


def test_with_max_wait_0_a_busy_batcher_never_holds() -> None:
    calls: list[list[int]] = []

    def fn(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        time.sleep(0.02)
        return list(items)

    async def main(wait: float) -> None:
        b: MicroBatcher[int] = MicroBatcher(fn, None, max_rows=100, max_wait_ms=wait)
        await asyncio.gather(b.submit(-1), b.submit(-2), b.submit(-3))
        futs = []
        for i in range(3):
            time.sleep(0.001)
            futs.append(asyncio.ensure_future(b.submit(i)))
            await asyncio.sleep(0)
        await asyncio.gather(*futs)

    _run(main(0))
    assert calls[:2] == [[-1, -2, -3], [0]]  # 0 dispatched at once


# -- input checks -----------------------------------------------------------------------------

SCHEMA = {
    "kind": "columns",
    "columns": [
        {"name": "x1", "type": "double", "nullable": True, "dtype": "float64"},
        {"name": "n", "type": "long", "nullable": False, "dtype": "int64"},
        {"name": "c", "type": "string", "nullable": False, "dtype": "str"},
        {"name": "small", "type": "integer", "nullable": False, "dtype": "int32"},
    ],
}


class _Model:
    signature = {"inputs": SCHEMA, "outputs": None, "classes": None}

    def prepare(self, data: Any) -> Any:  # pragma: no cover - columns path never calls it
        raise AssertionError


@pytest.mark.parametrize(
    ("cols", "rule", "column"),
    [
        ({"x1": ["a"], "n": [1], "c": ["u"], "small": [1]}, "wrong_type", "x1"),
        ({"x1": [True], "n": [1], "c": ["u"], "small": [1]}, "wrong_type", "x1"),
        ({"x1": [1.0], "n": [1.5], "c": ["u"], "small": [1]}, "wrong_type", "n"),
        ({"x1": [1.0], "n": [None], "c": ["u"], "small": [1]}, "not_nullable", "n"),
        ({"x1": [1.0], "n": [float("nan")], "c": ["u"], "small": [1]}, "not_nullable", "n"),
        ({"x1": [1.0], "n": [1], "c": [3], "small": [1]}, "wrong_type", "c"),
        ({"x1": [1.0], "n": [1], "c": ["u"], "small": [2**40]}, "wrong_type", "small"),
    ],
)
def test_check_columns_names_the_column_and_the_rule(
    cols: dict[str, list[Any]], rule: str, column: str
) -> None:
    with pytest.raises(ModelInputError) as info:
        check_columns(cols, SCHEMA)
    assert info.value.details == {"rule": rule, "column": column}
    assert repr(column) in info.value.message and f"rule: {rule}" in info.value.message


def test_nan_is_fine_in_a_double_column_and_ints_widen() -> None:
    check_columns({"x1": [float("nan"), 1, None], "n": [1, 2.0, 3]}, SCHEMA)


ROW = {"x1": 0.5, "n": 2, "c": "u", "small": 1}
EXPECTED = {"x1": [0.5], "n": [2], "c": ["u"], "small": [1]}


@pytest.mark.parametrize(
    "body",
    [
        [ROW],
        ROW,
        {k: [v] for k, v in ROW.items()},
        {"records": [ROW]},
        {"columns": {k: [v] for k, v in ROW.items()}},
        {"dataframe_records": [ROW]},
        {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}},
        {"instances": [ROW]},
        {"instances": [list(ROW.values())]},
        {"inputs": {k: [v] for k, v in ROW.items()}},
        {"inputs": [ROW]},
        [list(ROW.values())],
        {"dataframe_records": [{**ROW, "extra": 1}]},
    ],
)
def test_every_body_shape_gives_the_same_columns(body: Any) -> None:
    payload = payload_from_json(body, _Model())
    assert payload.rows == 1 and payload.columns == EXPECTED
    assert payload.log_rows() == [ROW]


@pytest.mark.parametrize(
    ("body", "rule", "words"),
    [
        ([{"x1": 0.5, "n": 2, "c": "u"}], "missing_column", "'small'"),
        ([], "bad_input", "empty"),
        ({"records": [ROW], "instances": [ROW]}, "bad_input", "exactly one"),
        ([[1, 2]], "wrong_shape", "row 0 has 2 values"),
        ({"x1": [1.0, 2.0], "n": [1], "c": ["u"], "small": [1]}, "bad_input", "lengths"),
        ({"dataframe_records": [ROW], "params": {"a": 1}}, "bad_input", "params"),
        ("text", "bad_input", "cannot read"),
    ],
)
def test_bad_bodies_are_input_errors(body: Any, rule: str, words: str) -> None:
    with pytest.raises(ModelInputError, match=words) as info:
        payload_from_json(body, _Model())
    assert info.value.details["rule"] == rule


def test_extra_columns_can_be_refused() -> None:
    with pytest.raises(ModelInputError, match="'extra'") as info:
        payload_from_json([{**ROW, "extra": 1}], _Model(), extra_columns="reject")
    assert info.value.details == {"rule": "extra_column", "column": "extra"}


@pytest.mark.parametrize(
    ("spec", "values", "rule"),
    [
        ({"type": "long", "nullable": True}, [1, None, 3], None),
        ({"type": "long", "nullable": False}, [1, None], "not_nullable"),
        ({"type": "long"}, [1, 2.0], None),  # a whole float passes the full check
        ({"type": "long"}, [2**63], "wrong_type"),
        ({"type": "integer"}, [-(2**31), 2**31 - 1], None),
        ({"type": "integer"}, [2**31], "wrong_type"),
        ({"type": "boolean"}, [True, 0, 1], None),
        ({"type": "boolean"}, [True, 2], "wrong_type"),
        ({"type": "double"}, [1, 2.5, None, float("nan")], None),
        ({"type": "double"}, [1.0, False], "wrong_type"),
        ({"type": "string", "nullable": True}, ["a", None], None),
        ({"type": "string"}, ["a", None], "not_nullable"),
        ({"type": "datetime"}, ["2024-01-01"], None),  # left to the signature's cast
    ],
)
def test_plain_columns_pass_at_once_and_others_get_every_rule(
    spec: dict[str, Any], values: list[Any], rule: str | None
) -> None:
    schema = {"kind": "columns", "columns": [{"name": "x", **spec}]}
    if rule is None:
        check_columns({"x": values}, schema)
        return
    with pytest.raises(ModelInputError) as err:
        check_columns({"x": values}, schema)
    assert err.value.details["rule"] == rule and err.value.details["column"] == "x"
