"""The run search filter and order_by parsers (dockyard.tracking.search)."""

from __future__ import annotations

import dataclasses

import pytest

from dockyard.core.errors import InvalidInput
from dockyard.tracking.search import (
    And,
    Comparison,
    Node,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)


def m(key: str, op: str, value: object) -> Comparison:
    return Comparison("metric", key, op, value)  # type: ignore[arg-type]


def p(key: str, op: str, value: object) -> Comparison:
    return Comparison("param", key, op, value)  # type: ignore[arg-type]


def t(key: str, op: str, value: object) -> Comparison:
    return Comparison("tag", key, op, value)  # type: ignore[arg-type]


def a(key: str, op: str, value: object) -> Comparison:
    return Comparison("attribute", key, op, value)  # type: ignore[arg-type]


# -- valid filters --------------------------------------------------------------------------------

VALID: list[tuple[str, Node]] = [
    ("metrics.auc > 0.9", m("auc", ">", 0.9)),
    ("metrics.auc>0.9", m("auc", ">", 0.9)),
    ("  metrics.auc   >=   1  ", m("auc", ">=", 1)),
    ("metrics.loss < -1.5", m("loss", "<", -1.5)),
    ("metrics.loss <= 1e-3", m("loss", "<=", 1e-3)),
    ("metrics.loss != 2.5E+10", m("loss", "!=", 2.5e10)),
    ("metrics.loss <> 3", m("loss", "!=", 3)),
    ("metrics.x = .5", m("x", "=", 0.5)),
    ("metrics.x = +7", m("x", "=", 7)),
    ("metrics.x = 10.", m("x", "=", 10.0)),
    ("metrics.x = -0", m("x", "=", 0)),
    ("metric.acc = 1", m("acc", "=", 1)),
    ("METRICS.acc = 1", m("acc", "=", 1)),
    ("metrics.val-loss < 0.2", m("val-loss", "<", 0.2)),
    ("metrics.train/loss < 0.2", m("train/loss", "<", 0.2)),
    ("metrics.a.b.c < 0.2", m("a.b.c", "<", 0.2)),
    ("metrics.`val loss` < 0.2", m("val loss", "<", 0.2)),
    ('metrics."val loss" < 0.2', m("val loss", "<", 0.2)),
    ("metrics.`a``b` = 1", m("a`b", "=", 1)),
    ("metrics.x in (1, 2.5, -3)", m("x", "IN", (1, 2.5, -3))),
    ("metrics.x NOT IN (1)", m("x", "NOT IN", (1,))),
    ("metrics.x is null", m("x", "IS NULL", None)),
    ("metrics.x IS NOT NULL", m("x", "IS NOT NULL", None)),
    ("params.model = 'rf'", p("model", "=", "rf")),
    ('params.model = "rf"', p("model", "=", "rf")),
    ("param.lr = '0.01'", p("lr", "=", "0.01")),
    ("params.\"learning-rate\" = '0.1'", p("learning-rate", "=", "0.1")),
    ("params.`learning rate` != ''", p("learning rate", "!=", "")),
    ("params.note = 'it''s'", p("note", "=", "it's")),
    ("params.note = 'it\\'s'", p("note", "=", "it's")),
    ('params.note = "say ""hi"""', p("note", "=", 'say "hi"')),
    ("params.note = 'a\\\\b'", p("note", "=", "a\\b")),
    ("params.note = 'a\\nb'", p("note", "=", "a\\nb")),
    ("params.note = 'un (and) or'", p("note", "=", "un (and) or")),
    ("params.model LIKE 'r%'", p("model", "LIKE", "r%")),
    ("params.model like 'r_'", p("model", "LIKE", "r_")),
    ("params.model ILIKE 'R%'", p("model", "ILIKE", "R%")),
    ("params.model NOT LIKE 'r%'", p("model", "NOT LIKE", "r%")),
    ("params.model not ilike 'r%'", p("model", "NOT ILIKE", "r%")),
    ("params.model IN ('rf', \"xgb\")", p("model", "IN", ("rf", "xgb"))),
    ("params.model NOT IN ('rf')", p("model", "NOT IN", ("rf",))),
    ("params.model < 'm'", p("model", "<", "m")),
    ("params.model IS NULL", p("model", "IS NULL", None)),
    ("tags.team = 'risk'", t("team", "=", "risk")),
    ("tag.team is not null", t("team", "IS NOT NULL", None)),
    ("tags.`mlflow.user` = 'x'", t("mlflow.user", "=", "x")),
    ("tags.and = 'x'", t("and", "=", "x")),
    ("status = 'RUNNING'", a("status", "=", "RUNNING")),
    ("status = 'finished'", a("status", "=", "FINISHED")),
    ("attributes.status != 'FAILED'", a("status", "!=", "FAILED")),
    ("status IN ('KILLED', 'failed')", a("status", "IN", ("KILLED", "FAILED"))),
    ("name = 'my run'", a("name", "=", "my run")),
    ("run_name LIKE 'my%'", a("name", "LIKE", "my%")),
    ("attributes.run_name = 'x'", a("name", "=", "x")),
    ("attr.name ILIKE 'x'", a("name", "ILIKE", "x")),
    ("attributes.`name` = 'x'", a("name", "=", "x")),
    ("start_time > 1700000000000", a("start_time", ">", 1700000000000)),
    ("start_time >= 1.7e12", a("start_time", ">=", 1.7e12)),
    ("END_TIME <= 5", a("end_time", "<=", 5)),
    ("end_time IS NULL", a("end_time", "IS NULL", None)),
    ("run_id = 'abc'", a("run_id", "=", "abc")),
    ("run_id IN ('a', 'b')", a("run_id", "IN", ("a", "b"))),
    ("user = 'alice'", a("user", "=", "alice")),
    ("experiment_id = 3", a("experiment_id", "=", "3")),
    ("experiment_id = '3'", a("experiment_id", "=", "3")),
    ("experiment_id IN (1, '2')", a("experiment_id", "IN", ("1", "2"))),
    ("parent_run_id = 'p1'", a("parent_run_id", "=", "p1")),
    ("parent_run_id IS NOT NULL", a("parent_run_id", "IS NOT NULL", None)),
    ("(metrics.a > 1)", m("a", ">", 1)),
    ("(((metrics.a > 1)))", m("a", ">", 1)),
    ("metrics.a > 1\nAND\tmetrics.b < 2", And((m("a", ">", 1), m("b", "<", 2)))),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_filters(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_blank_filter_is_none(text: str | None) -> None:
    assert parse_filter(text) is None


def test_number_types() -> None:
    assert parse_filter("metrics.x = 3") == m("x", "=", 3)
    node = parse_filter("metrics.x = 3")
    assert isinstance(node, Comparison) and type(node.value) is int
    node = parse_filter("metrics.x = 3.0")
    assert isinstance(node, Comparison) and type(node.value) is float
    node = parse_filter("metrics.x = 1e400")
    assert isinstance(node, Comparison) and node.value == float("inf")
    node = parse_filter("metrics.x = " + "9" * 5000)
    assert isinstance(node, Comparison) and node.value == float("inf")


def test_precedence_and_binds_tighter_than_or() -> None:
    x, y, z = m("a", ">", 1), p("b", "=", "2"), t("c", "=", "3")
    assert parse_filter("metrics.a > 1 or params.b = '2' and tags.c = '3'") == Or((x, And((y, z))))
    assert parse_filter("metrics.a > 1 and params.b = '2' or tags.c = '3'") == Or((And((x, y)), z))
    assert parse_filter("(metrics.a > 1 or params.b = '2') and tags.c = '3'") == And(
        (Or((x, y)), z)
    )
    assert parse_filter("metrics.a > 1 and (params.b = '2' or tags.c = '3')") == And(
        (x, Or((y, z)))
    )


def test_keywords_are_case_insensitive() -> None:
    expected = Or((m("a", ">", 1), And((m("b", ">", 2), m("c", "IS NOT NULL", None)))))
    for text in (
        "metrics.a > 1 OR metrics.b > 2 AND metrics.c IS NOT NULL",
        "metrics.a > 1 or metrics.b > 2 and metrics.c is not null",
        "metrics.a > 1 Or metrics.b > 2 aNd metrics.c Is NoT nUlL",
    ):
        assert parse_filter(text) == expected


def test_same_operators_flatten() -> None:
    x, y, z = m("a", ">", 1), m("b", ">", 1), m("c", ">", 1)
    assert parse_filter("metrics.a > 1 and metrics.b > 1 and metrics.c > 1") == And((x, y, z))
    assert parse_filter("(metrics.a > 1 or metrics.b > 1) or metrics.c > 1") == Or((x, y, z))
    assert parse_filter("metrics.a > 1 and (metrics.b > 1 and metrics.c > 1)") == And((x, y, z))


def test_example_from_the_docs() -> None:
    node = parse_filter("metrics.auc > 0.9 and (params.model = 'rf' or tags.team = 'risk')")
    assert node == And((m("auc", ">", 0.9), Or((p("model", "=", "rf"), t("team", "=", "risk")))))


def test_ast_is_frozen_and_hashable() -> None:
    node = parse_filter("metrics.a in (1, 2) or tags.b = 'x'")
    assert isinstance(node, Or)
    hash(node)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.items = ()  # type: ignore[misc]


# -- errors ---------------------------------------------------------------------------------------

ERRORS: list[tuple[str, int, str]] = [
    # unknown prefix / identifier
    ("foo.bar = 1", 0, "unknown prefix 'foo'"),
    ("metrics.a > 1 and metricz.b > 2", 18, "unknown prefix 'metricz'"),
    ("attributes.color = 'red'", 11, "unknown identifier 'color'"),
    ("color = 'red'", 0, "unknown identifier 'color'"),
    ("metrics = 1", 7, "expected '.' and a key after 'metrics'"),
    ("metrics. > 1", 8, "expected a key after 'metrics.'"),
    ("metrics.`` > 1", 8, "empty key"),
    ("`val loss` > 1", 0, "a quoted key needs a prefix"),
    # missing value
    ("metrics.auc > and x", 14, "expected a value after '>'"),
    ("metrics.auc >", 13, "expected a value after '>'"),
    ("metrics.auc >   ", 16, "expected a value after '>'"),
    ("params.model = rf", 15, "strings must be quoted, e.g. 'rf'"),
    ("params.model = null", 15, "use IS NULL"),
    ("metrics.a = )", 12, "expected a value after '='"),
    # missing comparison
    ("metrics.a > 1 and", 17, "expected a comparison such as metrics.auc > 0.9 after AND"),
    ("metrics.a > 1 or ", 17, "expected a comparison such as metrics.auc > 0.9 after OR"),
    ("and metrics.a > 1", 0, "found the keyword AND"),
    ("()", 1, "expected a comparison"),
    ("metrics.a > 1 and ()", 19, "expected a comparison"),
    # unbalanced parentheses
    ("(metrics.a > 1", 0, "'(' is never closed"),
    ("metrics.a > 1 and ((metrics.b > 1)", 18, "'(' is never closed"),
    ("metrics.a > 1)", 13, "')' has no matching '('"),
    ("(metrics.a > 1))", 15, "')' has no matching '('"),
    ("(metrics.a > 1 tags.b = 'x')", 15, "expected AND, OR or ')'"),
    # unterminated strings and keys
    ("tags.x = 'abc", 9, "unterminated string"),
    ('tags.x = "abc', 9, "unterminated string"),
    ("tags.x = 'it''s", 9, "unterminated string"),
    ("tags.x = 'abc\\'", 9, "unterminated string"),
    ("tags.`abc = 'x'", 5, "unterminated quoted key"),
    ('metrics."abc > 1', 8, "unterminated quoted key"),
    # trailing junk
    ("metrics.a = 1 foo", 14, "unexpected 'foo': expected AND, OR or the end of the filter"),
    ("metrics.a = 1 'x'", 14, "unexpected 'x'"),
    ("metrics.a = 1abc", 12, "malformed number"),
    ("metrics.a = 1.2.3", 12, "malformed number"),
    # unknown / missing operators
    ("metrics.a == 1", 10, "unknown operator '==' (use '=')"),
    ("metrics.a => 1", 10, "unknown operator '=>'"),
    ("metrics.a ~ 1", 10, "unknown operator '~'"),
    ("params.a contains 'x'", 9, "unknown operator 'contains'"),
    ("params.a", 8, "expected an operator after 'params.a'"),
    ("params.a 'x'", 9, "expected an operator after 'params.a'"),
    ("params.a not 'x'", 13, "expected LIKE, ILIKE or IN after NOT"),
    ("params.a is 'x'", 12, "expected NULL or NOT NULL"),
    ("params.a is not 1", 16, "expected NULL"),
    # IN lists
    ("tags.a in ()", 10, "empty IN list"),
    ("tags.a not in (  )", 14, "empty NOT IN list"),
    ("tags.a in 'x'", 10, "expected '(' and a list of values after IN"),
    ("tags.a in ('x' 'y')", 15, "expected ',' or ')' in the IN list"),
    ("tags.a in ('x',)", 15, "expected a value after ','"),
    ("tags.a in ('x'", 10, "the IN list is never closed"),
    # types
    ("metrics.a = 'x'", 12, "metric 'a' is compared with numbers, not the string 'x'"),
    ("metrics.a in (1, 'x')", 17, "compared with numbers"),
    ("metrics.a like 'x%'", 10, "operator LIKE is not supported for metric 'a'"),
    ("params.lr = 0.01", 12, "param 'lr' is compared as a string: quote the value, e.g. '0.01'"),
    ("tags.a in ('x', 1)", 16, "tag 'a' is compared as a string"),
    ("status = 'DONE'", 9, "status must be one of RUNNING, FINISHED, FAILED, KILLED"),
    ("status in ('RUNNING', 'nope')", 22, "status must be one of"),
    ("status = 1", 9, "status must be one of"),
    ("status > 'RUNNING'", 7, "operator > is not supported for 'status'"),
    ("status is null", 7, "operator IS NULL is not supported for 'status'"),
    ("start_time > '2024'", 13, "'start_time' is compared with numbers"),
    ("start_time like '1%'", 11, "operator LIKE is not supported"),
    ("start_time > 99999999999999999999", 13, "integer out of range"),
    ("name = 3", 7, "'name' is compared as a string"),
    ("experiment_id = 'abc'", 16, "experiment_id must be an integer"),
    ("experiment_id = 1.5", 16, "experiment_id must be an integer"),
    ("experiment_id > 1", 14, "operator > is not supported"),
]


@pytest.mark.parametrize(("text", "position", "fragment"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_point_at_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text)
    err = info.value
    assert err.details["position"] == position
    assert fragment in err.message
    first, shown, caret = err.message.split("\n")
    assert first.startswith(f"invalid filter at position {position}: ")
    assert shown == "  " + text
    assert caret == " " * (2 + position) + "^"
    assert err.to_dict()["details"] == {"position": position}


def test_error_message_format_exactly() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter("metrics.auc > and x")
    assert str(info.value) == (
        "invalid filter at position 14: expected a value after '>'\n"
        "  metrics.auc > and x\n"
        "                ^"
    )


def test_error_caret_stays_aligned_with_newlines_and_tabs() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter("metrics.a > 1\n\tand foo = 2")
    err = info.value
    assert err.details["position"] == 19
    _, shown, caret = err.message.split("\n")
    assert shown == "  metrics.a > 1  and foo = 2"
    assert shown[caret.index("^")] == "f"


def test_deep_nesting_is_rejected_not_a_crash() -> None:
    text = "(" * 500 + "metrics.a > 1" + ")" * 500
    with pytest.raises(InvalidInput, match="nested deeper"):
        parse_filter(text)
    assert parse_filter("(" * 30 + "metrics.a > 1" + ")" * 30) == m("a", ">", 1)


def test_non_string_filter_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="expected a string"):
        parse_filter(42)  # type: ignore[arg-type]


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_filter("metrics.a >")


# -- order_by -------------------------------------------------------------------------------------


def test_order_by_valid_items() -> None:
    assert parse_order_by(
        [
            "metrics.auc DESC",
            "params.lr",
            "start_time asc",
            "attributes.name",
            "tags.`my team` desc",
            "  run_name   ASC  ",
            'metrics."val loss"',
            "end_time Desc",
        ]
    ) == [
        OrderKey("metric", "auc", False),
        OrderKey("param", "lr", True),
        OrderKey("attribute", "start_time", True),
        OrderKey("attribute", "name", True),
        OrderKey("tag", "my team", False),
        OrderKey("attribute", "name", True),
        OrderKey("metric", "val loss", True),
        OrderKey("attribute", "end_time", False),
    ]


def test_order_by_empty_and_single_string() -> None:
    assert parse_order_by(None) == []
    assert parse_order_by([]) == []
    assert parse_order_by("metrics.auc desc") == [OrderKey("metric", "auc", False)]


@pytest.mark.parametrize(
    ("item", "position", "fragment"),
    [
        ("metrics.auc DOWN", 12, "expected ASC or DESC, found 'DOWN'"),
        ("metrics.auc desc extra", 17, "unexpected 'extra' after DESC"),
        ("", 0, "expected a sort key"),
        ("   ", 3, "expected a sort key"),
        ("foo", 0, "unknown identifier 'foo'"),
        ("bogus.auc", 0, "unknown prefix 'bogus'"),
        ("metrics.", 8, "expected a key"),
        ("metrics.`auc", 8, "unterminated quoted key"),
        ("metrics.auc > 1", 12, "expected ASC or DESC"),
    ],
)
def test_order_by_errors_name_the_item(item: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_order_by(["params.lr", item])
    err = info.value
    assert err.message.startswith(f"invalid order_by item {item!r} at position {position}: ")
    assert fragment in err.message
    assert err.details == {"item": item, "index": 1, "position": position}


def test_order_by_non_string_item() -> None:
    with pytest.raises(InvalidInput, match="expected a string") as info:
        parse_order_by([3])  # type: ignore[list-item]
    assert info.value.details["index"] == 0
