"""Compile the run search AST (:mod:`dockyard.tracking.search`) into SQLAlchemy Core.

``compile_filter(node)`` gives a boolean clause over :data:`schema.runs` to put in a
``select(runs).where(...)``; ``apply_order(stmt, keys)`` adds the joins and ``ORDER BY`` of an
``order_by`` list. Everything is portable between SQLite and PostgreSQL and every value is a
bound parameter.

Semantics:

* ``metrics.k <op> v`` is ``EXISTS`` a ``latest_metrics`` row of the run with key ``k``, not
  NaN, whose value compares true: a NaN latest value never matches a numeric comparison (not
  even ``!=``) but does count as present for ``IS NOT NULL``.
* ``params.k`` / ``tags.k`` likewise use ``EXISTS`` on ``params`` / ``tags``. Negative
  comparisons (``!=``, ``NOT LIKE``, ``NOT ILIKE``, ``NOT IN``) only match runs that have the
  key; ``IS NULL`` is ``NOT EXISTS`` (the run has no such key).
* Attributes compare the ``runs`` column directly; a NULL ``end_time``/``parent_run_id`` only
  matches ``IS NULL``.
* ``LIKE`` is case-sensitive on both backends. PostgreSQL's ``LIKE`` already is; SQLite's is
  not (ASCII case folding), so on SQLite the pattern is translated to an equivalent ``GLOB``
  (case-sensitive, ``%``->``*``, ``_``->``?``, literal ``*?[`` bracketed). The choice is made when
  the statement is compiled (a custom construct with a per-dialect compiler), so the clause does
  not need to know its engine. Patterns use ``\\`` as escape character on both backends; a
  trailing lone backslash is taken literally (PostgreSQL would reject it).
* ``ILIKE`` uses SQLAlchemy's ``ilike``: native ``ILIKE`` on PostgreSQL, ``lower(x) LIKE
  lower(p)`` on SQLite, whose ``lower`` folds ASCII letters only.
* String ``<``/``>`` comparisons follow the database's collation (byte order on SQLite, the
  database collation on PostgreSQL).

Ordering puts rows without a value last in both directions (``ORDER BY CASE WHEN missing THEN 1
ELSE 0 END, value``); for metrics a NaN latest value sorts after every number but before runs
without the metric. Each sort key left-outer-joins its own ``latest_metrics``/``params``/``tags``
alias on the table's primary key (run_id, key), so joins never multiply rows. A final
``runs.start_time DESC, runs.run_id`` tiebreak makes LIMIT/OFFSET pagination stable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    FromClause,
    Integer,
    Select,
    String,
    and_,
    case,
    false,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from dockyard.store import schema
from dockyard.tracking.search import And, Comparison, Node, Or, OrderKey, Value

__all__ = ["OrderPlan", "apply_order", "compile_filter", "compile_order_by", "like_to_glob"]

_ESCAPE = "\\"

# -- case-sensitive LIKE --------------------------------------------------------------------------


_ANY_RUN, _ANY_ONE = "%%", "__"  # two characters: cannot clash with a literal character


def _like_tokens(pattern: str) -> list[str]:
    """Split a LIKE pattern (escape ``\\``) into one-character literals, ``_ANY_RUN`` (``%``)
    and ``_ANY_ONE`` (``_``). A trailing lone backslash is a literal backslash."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == _ESCAPE:
            out.append(pattern[i + 1] if i + 1 < len(pattern) else _ESCAPE)
            i += 2
            continue
        out.append(_ANY_RUN if c == "%" else _ANY_ONE if c == "_" else c)
        i += 1
    return out


def _canonical_like(pattern: str) -> str:
    """The same pattern with every literal ``%``, ``_`` and ``\\`` escaped explicitly."""
    parts: list[str] = []
    for token in _like_tokens(pattern):
        if token == _ANY_RUN:
            parts.append("%")
        elif token == _ANY_ONE:
            parts.append("_")
        elif token in ("%", "_", _ESCAPE):
            parts.append(_ESCAPE + token)
        else:
            parts.append(token)
    return "".join(parts)


def like_to_glob(pattern: str) -> str:
    """Translate a LIKE pattern (escape ``\\``) into the SQLite GLOB pattern matching the same
    strings case-sensitively."""
    parts: list[str] = []
    for token in _like_tokens(pattern):
        if token == _ANY_RUN:
            parts.append("*")
        elif token == _ANY_ONE:
            parts.append("?")
        elif token in ("*", "?", "["):
            parts.append(f"[{token}]")
        else:
            parts.append(token)
    return "".join(parts)


class _CaseSensitiveLike(FunctionElement[bool]):
    """``expr LIKE pattern ESCAPE '\\'``, case-sensitive on every backend (GLOB on SQLite).

    Arguments: the expression, the canonical LIKE pattern and its GLOB translation, both bound
    parameters so that a cached compiled statement picks its dialect's one. It renders as a
    parenthesised predicate, so it needs no further grouping.
    """

    name = "dockyard_case_sensitive_like"
    inherit_cache = True
    type = Boolean()
    negated = False

    def __init__(self, expr: ColumnElement[Any], pattern: str) -> None:
        canonical = _canonical_like(pattern)
        super().__init__(
            expr, literal(canonical, String()), literal(like_to_glob(canonical), String())
        )

    def self_group(self, against: Any = None) -> Self:
        # Already a parenthesised predicate: no "= 1" wrapping on backends without booleans.
        return self


class _CaseSensitiveNotLike(_CaseSensitiveLike):
    """``expr NOT LIKE pattern``, case-sensitive on every backend (NOT GLOB on SQLite)."""

    name = "dockyard_case_sensitive_not_like"
    inherit_cache = True
    negated = True


@compiles(_CaseSensitiveLike)
def _like_default(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    expr, like_pattern, _glob = element.clauses.clauses
    if element.negated:
        return f"({compiler.process(expr.not_like(like_pattern, escape=_ESCAPE), **kw)})"
    return f"({compiler.process(expr.like(like_pattern, escape=_ESCAPE), **kw)})"


@compiles(_CaseSensitiveLike, "sqlite")
def _like_sqlite(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    expr, _like, glob_pattern = element.clauses.clauses
    operator = "NOT GLOB" if element.negated else "GLOB"
    return f"({compiler.process(expr.op(operator, is_comparison=True)(glob_pattern), **kw)})"


# -- filters --------------------------------------------------------------------------------------


def _compare(col: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    clause: ColumnElement[bool]
    if op == "=":
        clause = col == value
    elif op == "!=":
        clause = col != value
    elif op == "<":
        clause = col < value
    elif op == "<=":
        clause = col <= value
    elif op == ">":
        clause = col > value
    elif op == ">=":
        clause = col >= value
    elif op == "LIKE":
        clause = _CaseSensitiveLike(col, value)
    elif op == "NOT LIKE":
        clause = _CaseSensitiveNotLike(col, value)
    elif op == "ILIKE":
        clause = col.ilike(_canonical_like(value), escape=_ESCAPE)
    elif op == "NOT ILIKE":
        clause = col.not_ilike(_canonical_like(value), escape=_ESCAPE)
    elif op == "IN":
        clause = col.in_(list(value))
    elif op == "NOT IN":
        clause = col.not_in(list(value))
    else:
        raise ValueError(f"unsupported operator {op!r}")
    return clause


def _numeric(value: Value) -> list[int | float]:
    """The number(s) of a numeric comparison (one for scalar operators, several for IN)."""
    items = value if isinstance(value, tuple) else (value,)
    out: list[int | float] = []
    for item in items:
        if isinstance(item, str) or item is None:
            raise ValueError(f"expected a number, got {item!r}")
        out.append(item)
    return out


def _bigint_operand(value: int | float) -> ColumnElement[Any] | int:
    """A number for a BIGINT column: ints as is, integral floats as ints, others as FLOAT."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**63:
            return int(value)
        return literal(value, Float())
    return value


def _float(value: int | float) -> float:
    """A metric comparison value as a float; integers too large for one become +-inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _metric(c: Comparison) -> ColumnElement[bool]:
    lm = schema.latest_metrics
    present = select(lm.c.run_id).where(lm.c.run_id == schema.runs.c.run_id, lm.c.key == c.key)
    if c.op == "IS NULL":
        return ~present.exists()
    if c.op == "IS NOT NULL":
        return present.exists()
    numbers = [_float(v) for v in _numeric(c.value)]
    value: Any = numbers if c.op in ("IN", "NOT IN") else numbers[0]
    return present.where(
        lm.c.is_nan == false(), lm.c.value.is_not(None), _compare(lm.c.value, c.op, value)
    ).exists()


def _key_value(c: Comparison) -> ColumnElement[bool]:
    table = schema.params if c.kind == "param" else schema.tags
    present = select(table.c.run_id).where(
        table.c.run_id == schema.runs.c.run_id, table.c.key == c.key
    )
    if c.op == "IS NULL":
        return ~present.exists()
    if c.op == "IS NOT NULL":
        return present.exists()
    return present.where(_compare(table.c.value, c.op, c.value)).exists()


def _attribute(c: Comparison) -> ColumnElement[bool]:
    col = schema.runs.c[c.key]
    if c.op == "IS NULL":
        return col.is_(None)
    if c.op == "IS NOT NULL":
        return col.is_not(None)
    value: Any = c.value
    if c.key == "experiment_id":
        value = tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)
    elif c.key in ("start_time", "end_time"):
        operands = [_bigint_operand(v) for v in _numeric(value)]
        value = operands if c.op in ("IN", "NOT IN") else operands[0]
    return _compare(col, c.op, value)


def compile_filter(node: Node | None) -> ColumnElement[bool]:
    """A boolean clause over ``schema.runs`` for a parsed filter (``true()`` for None).

    Use it as ``select(schema.runs).where(compile_filter(node))``; the metric/param/tag
    subqueries correlate with the enclosing statement's ``runs``.
    """
    if node is None:
        return true()
    if isinstance(node, And):
        return and_(*(compile_filter(item) for item in node.items))
    if isinstance(node, Or):
        return or_(*(compile_filter(item) for item in node.items))
    if node.kind == "metric":
        return _metric(node)
    if node.kind in ("param", "tag"):
        return _key_value(node)
    if node.kind == "attribute":
        return _attribute(node)
    raise ValueError(f"unknown comparison kind {node.kind!r}")


# -- ordering -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderPlan:
    """What ``apply_order`` adds: left outer joins ``(alias, on clause)`` and ORDER BY terms."""

    joins: tuple[tuple[FromClause, ColumnElement[bool]], ...]
    order_by: tuple[ColumnElement[Any], ...]


# Sort ranks as SQL literals rather than bound parameters.
_ZERO: ColumnElement[int] = literal_column("0", Integer())
_ONE: ColumnElement[int] = literal_column("1", Integer())
_TWO: ColumnElement[int] = literal_column("2", Integer())


def _directed(col: ColumnElement[Any], ascending: bool) -> ColumnElement[Any]:
    return col.asc() if ascending else col.desc()


def compile_order_by(keys: Sequence[OrderKey] | None) -> OrderPlan:
    """Joins and ORDER BY terms for ``keys``, NULLs (missing values) last in both directions,
    ending with the ``start_time DESC, run_id`` tiebreak (alone when ``keys`` is empty)."""
    runs = schema.runs
    joins: list[tuple[FromClause, ColumnElement[bool]]] = []
    terms: list[ColumnElement[Any]] = []
    for i, key in enumerate(keys or ()):
        if key.kind == "metric":
            lm = schema.latest_metrics.alias(f"dy_order_{i}")
            joins.append((lm, and_(lm.c.run_id == runs.c.run_id, lm.c.key == key.key)))
            rank = case((lm.c.run_id.is_(None), _TWO), (lm.c.is_nan == true(), _ONE), else_=_ZERO)
            terms += [rank.asc(), _directed(lm.c.value, key.ascending)]
        elif key.kind in ("param", "tag"):
            table = schema.params if key.kind == "param" else schema.tags
            alias = table.alias(f"dy_order_{i}")
            joins.append((alias, and_(alias.c.run_id == runs.c.run_id, alias.c.key == key.key)))
            rank = case((alias.c.run_id.is_(None), _ONE), else_=_ZERO)
            terms += [rank.asc(), _directed(alias.c.value, key.ascending)]
        elif key.kind == "attribute":
            col = runs.c[key.key]
            if col.nullable:
                terms.append(case((col.is_(None), _ONE), else_=_ZERO).asc())
            terms.append(_directed(col, key.ascending))
        else:
            raise ValueError(f"unknown order key kind {key.kind!r}")
    terms += [runs.c.start_time.desc(), runs.c.run_id.asc()]
    return OrderPlan(tuple(joins), tuple(terms))


def apply_order(stmt: Select[Any], keys: Sequence[OrderKey] | None) -> Select[Any]:
    """``stmt`` (a select from ``schema.runs``) with the joins and ORDER BY of ``keys``.

    Default order (no keys): ``start_time DESC, run_id``.
    """
    plan = compile_order_by(keys)
    for target, onclause in plan.joins:
        stmt = stmt.outerjoin_from(schema.runs, target, onclause)
    return stmt.order_by(*plan.order_by)
