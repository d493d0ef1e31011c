"""The redaction engine: rules, keys, and drop / hash / mask on Arrow tables and JSON bodies."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import re
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.core.config import SETTINGS, load_settings
from dockyard.core.errors import ConfigError, InvalidInput
from dockyard.governance.redaction import (
    DEFAULT_KEEP,
    KEY_SETTING,
    RedactionKey,
    RedactionPolicy,
    RedactionRule,
    redaction_key,
)

SECRET = "k" * 16 + "0123456789abcdef"
KEY = RedactionKey(SECRET)
HASHED = re.compile(r"^h:[0-9a-f]{32}$")
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def policy(*rules: tuple[str, str] | tuple[str, str, int]) -> RedactionPolicy:
    return RedactionPolicy.from_rules(
        {"column": r[0], "action": r[1], **({"keep": r[2]} if len(r) > 2 else {})} for r in rules
    )


def reference_hash(secret: str, text: str | bytes) -> str:
    """The documented algorithm, written out independently of the engine."""
    derived = hmac.new(secret.encode(), b"dockyard redaction hash v1", hashlib.sha256).digest()
    data = text.encode() if isinstance(text, str) else text
    return "h:" + hmac.new(derived, data, hashlib.sha256).hexdigest()[:32]


# -- rules and policies --------------------------------------------------------------------------


def test_rules_are_validated_with_messages_that_name_the_problem() -> None:
    assert RedactionRule("card", "mask").keep == DEFAULT_KEEP == 4
    assert RedactionRule("card", "mask", 0).keep == 0
    assert RedactionRule("email", "drop").keep is None
    cases: list[tuple[dict[str, Any], str]] = [
        ({"column": "", "action": "drop"}, "needs a column name"),
        ({"column": "  ", "action": "drop"}, "needs a column name"),
        ({"column": 3, "action": "drop"}, "needs a column name"),
        ({"column": " email", "action": "drop"}, "whitespace"),
        ({"column": "a\nb", "action": "drop"}, "control characters"),
        ({"column": "x" * 257, "action": "drop"}, "longer than 256"),
        ({"column": "email", "action": "encrypt"}, "one of drop, hash, mask"),
        ({"column": "email", "action": "hash", "keep": 4}, "only a mask keeps"),
        ({"column": "card", "action": "mask", "keep": -1}, "0 to 64"),
        ({"column": "card", "action": "mask", "keep": 65}, "0 to 64"),
        ({"column": "card", "action": "mask", "keep": "4"}, "0 to 64"),
        ({"column": "card", "action": "mask", "keep": True}, "0 to 64"),
        ({"column": "card", "action": "mask", "kept": 4}, "unknown fields"),
    ]
    for rule, message in cases:
        with pytest.raises(InvalidInput, match=message):
            RedactionPolicy.from_rules([rule])


def test_a_column_gets_one_rule_compared_case_insensitively() -> None:
    with pytest.raises(InvalidInput, match="two redaction rules") as info:
        policy(("email", "drop"), ("card", "mask"), ("Email", "hash"))
    assert "'Email'" in str(info.value) and "case-insensitively" in str(info.value)
    with pytest.raises(InvalidInput, match="two redaction rules"):
        policy(("email", "drop"), ("email", "drop"))
    with pytest.raises(InvalidInput, match="list of rules"):
        RedactionPolicy("email")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="an object"):
        RedactionPolicy.from_rules(["email"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="at most 1000"):
        RedactionPolicy.from_rules({"column": f"c{i}", "action": "drop"} for i in range(1001))


def test_policy_round_trips_and_reports_what_it_matches() -> None:
    p = policy(("email", "drop"), ("customer_id", "hash"), ("card", "mask", 2))
    assert RedactionPolicy.from_rules(p.to_list()) == p
    assert p.to_list() == [
        {"column": "email", "action": "drop"},
        {"column": "customer_id", "action": "hash"},
        {"column": "card", "action": "mask", "keep": 2},
    ]
    assert p.needs_key and not policy(("email", "drop")).needs_key
    assert not RedactionPolicy() and p
    cols = ["EMAIL", "amount", "card "]
    assert [(c, r.column) for c, r in p.matches(cols)] == [("EMAIL", "email"), ("card ", "card")]
    assert [r.column for r in p.unmatched(cols)] == ["customer_id"]


# -- the key -------------------------------------------------------------------------------------


def test_hash_rules_without_a_key_fail_naming_the_setting_even_when_the_column_is_absent() -> None:
    p = policy(("customer_id", "hash"))
    for data in ([{"amount": 1}], {"amount": [1]}, pa.table({"amount": [1]})):
        with pytest.raises(ConfigError, match=KEY_SETTING):
            p.apply(data)
    # Drop and mask need no key.
    assert policy(("email", "drop")).apply([{"email": "a@b.c", "x": 1}]) == [{"x": 1}]


def test_keys_are_long_hidden_and_come_from_the_setting() -> None:
    with pytest.raises(ConfigError, match=f"{KEY_SETTING} must be at least 32"):
        RedactionKey("short")
    with pytest.raises(ConfigError, match="whitespace"):
        RedactionKey(" " + SECRET)
    assert SECRET not in repr(KEY) and KEY.key_id in repr(KEY) and len(KEY.key_id) == 16
    assert "redaction_key" in {s.name for s in SETTINGS}
    assert redaction_key(load_settings(environ={})) is None
    s = load_settings(environ={KEY_SETTING: SECRET})
    assert s.sources["redaction_key"] == "env"
    key = redaction_key(s)
    assert key is not None and key.key_id == KEY.key_id
    with pytest.raises(ConfigError, match=KEY_SETTING):
        redaction_key(load_settings(environ={KEY_SETTING: "too-short"}))
    # The secret may be passed directly too.
    assert policy(("c", "hash")).apply([{"c": "x"}], SECRET) == policy(("c", "hash")).apply(
        [{"c": "x"}], KEY
    )


def test_hash_is_the_documented_hmac_and_depends_on_the_key() -> None:
    p = policy(("phone", "hash"))
    out = p.apply([{"phone": "+44 7700 900123"}], KEY)
    assert out == [{"phone": reference_hash(SECRET, "+44 7700 900123")}]
    other = p.apply([{"phone": "+44 7700 900123"}], "z" * 40)
    assert other != out and HASHED.match(other[0]["phone"])
    # Not the plain sha256 of the value: a dictionary of phone numbers does not reverse it.
    assert hashlib.sha256(b"+44 7700 900123").hexdigest()[:32] not in out[0]["phone"]


# -- Arrow tables ----------------------------------------------------------------------------------


def test_table_drop_hash_and_mask() -> None:
    table = pa.table(
        {
            "Email": ["ana@example.com", "bo@example.com", None],
            "customer_id": [1001, 1002, 1001],
            "card_number": ["4111111111111111", None, "12"],
            "amount": [9.5, 20.0, 3.25],
        }
    )
    p = policy(("email", "drop"), ("customer_id", "hash"), ("card_number", "mask"))
    out = p.apply(table, KEY)
    assert out.schema.names == ["customer_id", "card_number", "amount"]
    assert out.schema.field("customer_id").type == pa.string()
    ids = out.column("customer_id").to_pylist()
    assert ids[0] == ids[2] != ids[1] and all(HASHED.match(i) for i in ids)
    assert ids[0] == reference_hash(SECRET, "1001")
    # A value no longer than what the mask keeps is masked whole.
    assert out.column("card_number").to_pylist() == ["************1111", None, "**"]
    assert out.column("amount") == table.column("amount")
    assert table.num_columns == 4 and table.column("Email")[0].as_py() == "ana@example.com"


def test_table_without_matching_columns_is_returned_as_is() -> None:
    table = pa.table({"amount": [1.0]})
    assert policy(("email", "drop"), ("id", "hash")).apply(table, KEY) is table


def test_nulls_stay_null_and_numbers_are_masked_as_text() -> None:
    table = pa.table(
        {
            "n": pa.array([1234567, None, 42], pa.int64()),
            "f": [0.000015, None, 1.0],
            "b": [True, None, False],
            "nothing": pa.nulls(3),
        }
    )
    p = policy(("n", "mask", 3), ("f", "mask", 2), ("b", "hash"), ("nothing", "hash"))
    out = p.apply(table, KEY).to_pydict()
    assert out["n"] == ["****567", None, "**"]
    assert out["f"] == ["******15", None, "*"]  # Arrow writes 0.000015 and 1
    assert out["b"][1] is None and out["b"][0] == reference_hash(SECRET, "true")
    assert out["nothing"] == [None, None, None]


def test_other_arrow_shapes_dictionary_chunked_batches_binary_dates_nested() -> None:
    chunked = pa.Table.from_batches(
        [
            pa.record_batch({"id": pa.array(["a", "b"]).dictionary_encode()}),
            pa.record_batch({"id": pa.array(["b", None]).dictionary_encode()}),
        ]
    )
    ids = policy(("id", "hash")).apply(chunked, KEY).column("id").to_pylist()
    assert ids == [reference_hash(SECRET, "a"), *[reference_hash(SECRET, "b")] * 2, None]

    batch = pa.record_batch(
        {
            "raw": pa.array([b"\x00\xffsecret", None], pa.binary()),
            "day": pa.array([dt.date(2024, 1, 31), None]),
            "addr": pa.array([{"city": "Oslo", "zip": "0150"}, None]),
            "tags": pa.array([["a", "b"], []]),
        }
    )
    p = policy(("raw", "mask"), ("day", "mask", 2), ("addr", "hash"), ("tags", "mask"))
    out = p.apply(batch, KEY)
    assert isinstance(out, pa.RecordBatch)
    got = out.to_pydict()
    assert got["raw"] == ["********", None]  # bytes are masked whole
    assert got["day"] == ["********31", None]
    assert got["addr"] == [reference_hash(SECRET, '{"city":"Oslo","zip":"0150"}'), None]
    assert got["tags"] == ["*********", "**"]  # nested values are masked whole
    assert policy(("raw", "hash")).apply(batch, KEY).column("raw")[0].as_py() == reference_hash(
        SECRET, b"\x00\xffsecret"
    )


def test_pandas_metadata_is_dropped_once_columns_change() -> None:
    import pandas as pd

    table = pa.Table.from_pandas(pd.DataFrame({"email": ["a"], "x": [1]}), preserve_index=False)
    assert b"pandas" in table.schema.metadata
    out = policy(("email", "drop")).apply(table)
    assert out.schema.metadata is None or b"pandas" not in out.schema.metadata
    assert out.to_pandas().to_dict("records") == [{"x": 1}]


def test_hashing_computes_one_hmac_per_distinct_value(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = RedactionKey.hash_many

    def counting(self: RedactionKey, values: Any) -> Any:
        values = list(values)
        seen.append(len(values))
        return original(self, values)

    monkeypatch.setattr(RedactionKey, "hash_many", counting)
    table = pa.table({"id": [f"c{i % 100}" for i in range(50_000)]})
    out = policy(("id", "hash")).apply(table, KEY)
    assert seen == [100] and out.num_rows == 50_000


# -- JSON bodies: records and columns ----------------------------------------------------------


def test_records_and_columns_are_redacted_without_touching_the_input() -> None:
    records = [
        {"email": "a@b.c", "id": 7, "card": "4111111111111111", "x": {"deep": [1]}},
        {"id": "7", "card": 4111111111111111},
        {"EMAIL": "c@d.e", "x": None},
    ]
    before = copy.deepcopy(records)
    p = policy(("email", "drop"), ("id", "hash"), ("card", "mask"), ("missing", "hash"))
    out = p.apply(records, KEY)
    assert records == before
    h7 = reference_hash(SECRET, "7")
    assert out == [
        {"id": h7, "card": "************1111", "x": {"deep": [1]}},
        {"id": h7, "card": "************1111"},  # the number 7 and the text "7" hash alike
        {"x": None},
    ]
    columns = {"email": ["a"], "id": [7, None], "amount": [1.5, 2.0]}
    col_before = copy.deepcopy(columns)
    out_cols = p.apply(columns, KEY)
    assert columns == col_before
    assert out_cols == {"id": [h7, None], "amount": [1.5, 2.0]}
    assert out_cols["amount"] is columns["amount"]  # untouched columns are not copied


def test_mixed_and_odd_json_values() -> None:
    p = policy(("v", "hash"))
    values = [1, "1", 1.0, True, None, 2**70, {"b": 1, "a": [1, 2]}, {"a": [1, 2], "b": 1}]
    out = p.apply({"v": values}, KEY)["v"]
    assert out[0] == out[1] == out[2] == reference_hash(SECRET, "1")
    assert out[3] == reference_hash(SECRET, "true") and out[4] is None
    assert out[5] == reference_hash(SECRET, str(2**70))
    assert out[6] == out[7] == reference_hash(SECRET, '{"a":[1,2],"b":1}')
    masked = policy(("v", "mask", 2)).apply({"v": [12345, "ab", {"k": "secret"}]})["v"]
    assert masked == ["***45", "**", "**************"]


def test_input_shapes_that_are_refused() -> None:
    p = policy(("email", "drop"))
    with pytest.raises(InvalidInput, match="record 1 is a str"):
        p.apply([{"email": "a"}, "oops"])
    with pytest.raises(InvalidInput, match="pass one record as a list"):
        p.apply({"email": "a@b.c"})
    with pytest.raises(InvalidInput, match="from_pandas"):
        import pandas as pd

        p.apply(pd.DataFrame({"email": ["a"]}))
    with pytest.raises(InvalidInput, match="got int"):
        p.apply(3)


# -- properties ------------------------------------------------------------------------------------

TEXT = st.one_of(st.none(), st.text(max_size=30))


@PROPERTY
@given(values=st.lists(TEXT, max_size=40), keep=st.integers(0, 8))
def test_mask_keeps_length_and_only_the_tail(values: list[str | None], keep: int) -> None:
    out = policy(("c", "mask", keep)).apply(pa.table({"c": pa.array(values, pa.string())}))
    got = out.column("c").to_pylist()
    for before, after in zip(values, got, strict=True):
        if before is None:
            assert after is None
            continue
        assert len(after) == len(before)
        if keep and len(before) > keep:
            assert after == "*" * (len(before) - keep) + before[-keep:]
        else:
            assert after == "*" * len(before)


@PROPERTY
@given(values=st.lists(TEXT, max_size=40))
def test_hash_is_deterministic_injective_and_null_preserving(values: list[str | None]) -> None:
    got = policy(("c", "hash")).apply({"c": values}, KEY)["c"]
    by_input: dict[str, str] = {}
    for before, after in zip(values, got, strict=True):
        if before is None:
            assert after is None
            continue
        assert HASHED.match(after) and after == reference_hash(SECRET, before)
        assert by_input.setdefault(before, after) == after
    assert len(set(by_input.values())) == len(by_input)


SCALAR = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
)


@PROPERTY
@given(
    column=st.one_of(
        st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=20),
        st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=20),
        st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=20),
        st.lists(st.one_of(st.none(), st.booleans()), max_size=20),
    ),
    action=st.sampled_from(["hash", "mask"]),
)
def test_json_bodies_and_arrow_tables_are_redacted_alike(column: list[Any], action: str) -> None:
    """What a request body gives and what the same column in a Table gives redact to the
    same values, so the prediction log is the same whichever path it came through."""
    p = policy(("c", action))
    as_records = [r["c"] for r in p.apply([{"c": v} for v in column], KEY)]
    as_columns = p.apply({"c": column}, KEY)["c"]
    as_table = p.apply(pa.table({"c": pa.array(column)}), KEY).column("c").to_pylist()
    assert as_records == as_columns == as_table


@PROPERTY
@given(values=st.lists(SCALAR, max_size=20))
def test_mixed_columns_hash_each_value_like_its_own_typed_column(values: list[Any]) -> None:
    p = policy(("c", "hash"))
    together = p.apply({"c": values}, KEY)["c"]
    one_by_one = [p.apply({"c": [v]}, KEY)["c"][0] for v in values]
    assert together == one_by_one
