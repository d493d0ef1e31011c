"""The run search language: a filter parser and an ``order_by`` parser.

This module is pure Python (no SQLAlchemy): it turns text into a small frozen AST that
:mod:`dockyard.store._search_sql` compiles into SQL. It is MLflow's ``search_runs`` filter with
``OR`` and parentheses added.

Filter grammar (keywords are case-insensitive)::

    expr        := or_expr
    or_expr     := and_expr ("OR" and_expr)*
    and_expr    := atom ("AND" atom)*
    atom        := "(" expr ")" | comparison
    comparison  := identifier op value
                 | identifier ("IN" | "NOT" "IN") "(" value ("," value)* ")"
                 | identifier "IS" ["NOT"] "NULL"
    identifier  := prefix "." key | attribute
    prefix      := "metrics" | "params" | "tags" | "attributes"
                   (also "metric", "param", "tag", "attribute", "attr"; case-insensitive)
    key         := [A-Za-z0-9_.\\-/]+ | `quoted key` | "quoted key"
    attribute   := run_id | name | run_name | status | start_time | end_time | user
                 | experiment_id | parent_run_id
    op          := "=" | "!=" | "<" | "<=" | ">" | ">=" | "LIKE" | "ILIKE"
                 | "NOT" "LIKE" | "NOT" "ILIKE"
    value       := number | 'string' | "string"
    number      := [+-]? (digits ["." [digits]] | "." digits) [("e"|"E") [+-]? digits]

``AND`` binds tighter than ``OR``: ``a OR b AND c`` is ``a OR (b AND c)``. In a quoted string or
key the quote is escaped by doubling it (``'it''s'``) or with a backslash (``'it\\'s'``); ``\\\\``
is one backslash and any other backslash is kept as is (so ``'50\\%'`` reaches LIKE as ``50\\%``).

Types and operators:

* ``metrics.<key>`` compare numerically (the latest value of the metric); a string value is an
  error. ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``IN``, ``NOT IN``, ``IS [NOT] NULL``.
* ``params.<key>`` and ``tags.<key>`` compare as strings (params are strings, like MLflow); a
  number value is an error (quote it). All comparisons, ``LIKE``, ``ILIKE``, ``NOT LIKE``,
  ``NOT ILIKE``, ``IN``, ``NOT IN``, ``IS [NOT] NULL``.
* ``IS NULL`` means "the run has no such metric/param/tag". Every other comparison, negative
  ones (``!=``, ``NOT LIKE``, ``NOT IN``) included, only matches runs that have the key.
* attributes: ``start_time``/``end_time`` are numbers (epoch milliseconds); ``run_id``,
  ``name`` (alias ``run_name``), ``user``, ``parent_run_id`` are strings; ``status`` takes
  ``=``, ``!=``, ``IN``, ``NOT IN`` with one of RUNNING, FINISHED, FAILED, KILLED (any case,
  normalised to upper case); ``experiment_id`` takes ``=``, ``!=``, ``IN``, ``NOT IN`` with an
  integer or a string of digits (normalised to a string). ``end_time`` and ``parent_run_id``
  also take ``IS [NOT] NULL``.
* In ``LIKE``/``ILIKE`` patterns ``%`` is any run of characters, ``_`` one character and a
  backslash makes the next character literal. ``LIKE`` is case-sensitive, ``ILIKE`` not.

Errors are :class:`~dockyard.core.errors.InvalidInput` with the 0-based offset in
``details["position"]`` and a message that shows the filter with a caret under that offset.

``order_by`` items: ``identifier ["ASC" | "DESC"]`` (ascending by default), e.g.
``"metrics.auc DESC"``, ``"params.lr"``, ``"start_time asc"``, ``"attributes.name"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn, TypeAlias

from dockyard.core.entities import RunStatus
from dockyard.core.errors import InvalidInput

__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Kind",
    "Node",
    "Or",
    "OrderKey",
    "Scalar",
    "Value",
    "parse_filter",
    "parse_order_by",
]

Kind: TypeAlias = Literal["metric", "param", "tag", "attribute"]
Scalar: TypeAlias = str | int | float
#: A comparison's value: a scalar, a tuple for IN / NOT IN, None for IS [NOT] NULL.
Value: TypeAlias = Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True)
class Comparison:
    """``<kind>.<key> <op> <value>``.

    ``op`` is one of ``= != < <= > >= LIKE ILIKE NOT LIKE NOT ILIKE IN NOT IN IS NULL
    IS NOT NULL``. For attributes ``key`` is the canonical ``runs`` column name.
    """

    kind: Kind
    key: str
    op: str
    value: Value


@dataclass(frozen=True)
class And:
    """All of ``items`` (at least two; nested Ands are flattened)."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any of ``items`` (at least two; nested Ors are flattened)."""

    items: tuple[Node, ...]


Node: TypeAlias = Comparison | And | Or


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` item: sort runs by ``kind``/``key``."""

    kind: Kind
    key: str
    ascending: bool = True


# -- vocabulary ---------------------------------------------------------------------------------

_AttrType = Literal["string", "number", "status", "experiment_id"]

#: Canonical attribute name -> (value type, nullable column).
ATTRIBUTES: dict[str, tuple[_AttrType, bool]] = {
    "run_id": ("string", False),
    "name": ("string", False),
    "user": ("string", False),
    "parent_run_id": ("string", True),
    "status": ("status", False),
    "start_time": ("number", False),
    "end_time": ("number", True),
    "experiment_id": ("experiment_id", False),
}
_ATTRIBUTE_ALIASES: dict[str, str] = {"run_name": "name"}

_PREFIXES: dict[str, Kind] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
}

_NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_PATTERN_OPS = frozenset({"LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"})
_LIST_OPS = frozenset({"IN", "NOT IN"})
_NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
_EQUALITY_OPS = frozenset({"=", "!="})

_SYMBOL_OPS: dict[str, str] = {
    "=": "=",
    "!=": "!=",
    "<>": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
_ALL_OPS_TEXT = "=, !=, <, <=, >, >=, LIKE, ILIKE, NOT LIKE, NOT ILIKE, IN, NOT IN, IS [NOT] NULL"
_STATUSES = tuple(s.value for s in RunStatus)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_DEPTH = 64

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY = re.compile(r"[A-Za-z0-9_.\-/]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_SYMBOLS = re.compile(r"[=!<>~^]+")
_SNIPPET = re.compile(r"[^\s()]{1,30}|.")
_QUOTES = "'\"`"


def _quote(text: str) -> str:
    return "'" + text + "'"


# -- the scanner / recursive-descent parser ------------------------------------------------------


class _Parser:
    """Recursive descent over ``text``; ``pos`` is the next unread character."""

    def __init__(self, text: str, header: str, details: dict[str, object]) -> None:
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.depth = 0
        self._header = header
        self._details = details

    # ---- errors

    def fail(self, position: int, reason: str) -> NoReturn:
        shown = self.text.replace("\n", " ").replace("\r", " ").replace("\t", " ")
        message = f"{self._header} at position {position}: {reason}\n  {shown}\n  {' ' * position}^"
        raise InvalidInput(message, **self._details, position=position)

    def snippet(self, position: int) -> str:
        m = _SNIPPET.match(self.text, position)
        text = m.group() if m else self.text[position:]
        return text if text[:1] in _QUOTES else _quote(text)

    # ---- low-level scanning

    def skip_ws(self) -> int:
        while self.pos < self.n and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos

    def at_end(self) -> bool:
        return self.skip_ws() >= self.n

    def peek_word(self) -> re.Match[str] | None:
        self.skip_ws()
        return _WORD.match(self.text, self.pos)

    def accept_keyword(self, keyword: str) -> bool:
        m = self.peek_word()
        if m is not None and m.group().lower() == keyword:
            self.pos = m.end()
            return True
        return False

    def quoted(self, what: str) -> str:
        """Read a quoted string/key starting at ``pos`` (on the opening quote)."""
        start = self.pos
        quote = self.text[start]
        out: list[str] = []
        i = start + 1
        while True:
            if i >= self.n:
                self.fail(start, f"unterminated {what}: the {quote} here is never closed")
            c = self.text[i]
            if c == "\\" and i + 1 < self.n and self.text[i + 1] in _QUOTES + "\\":
                out.append(self.text[i + 1])
                i += 2
            elif c == quote:
                if i + 1 < self.n and self.text[i + 1] == quote:
                    out.append(quote)
                    i += 2
                else:
                    self.pos = i + 1
                    return "".join(out)
            else:
                out.append(c)
                i += 1

    # ---- identifiers

    def identifier(self, expected: str, after: str | None) -> tuple[Kind, str, int]:
        """``prefix.key`` or a bare attribute; returns (kind, key, start position)."""
        start = self.skip_ws()
        context = f" after {after}" if after else ""
        if start >= self.n:
            self.fail(start, f"expected {expected}{context}")
        m = _WORD.match(self.text, start)
        if m is None:
            c = self.text[start]
            if c in '"`':
                self.fail(start, "a quoted key needs a prefix, e.g. metrics.`val loss`")
            self.fail(start, f"expected {expected}{context}, found {self.snippet(start)}")
        word = m.group()
        lower = word.lower()
        if m.end() < self.n and self.text[m.end()] == ".":
            kind = _PREFIXES.get(lower)
            if kind is None:
                self.fail(
                    start,
                    f"unknown prefix {_quote(word)}: expected metrics., params., tags. "
                    "or attributes.",
                )
            self.pos = m.end() + 1
            key_pos = self.pos
            key = self.key(word)
            if kind == "attribute":
                return kind, self.attribute(key, key_pos), start
            return kind, key, start
        if lower in _PREFIXES:
            self.fail(m.end(), f"expected '.' and a key after {_quote(word)}")
        if lower in ("and", "or", "not"):
            self.fail(start, f"expected {expected}{context}, found the keyword {word.upper()}")
        self.pos = m.end()
        return "attribute", self.attribute(word, start), start

    def key(self, prefix: str) -> str:
        at = self.pos
        if at < self.n and self.text[at] in '"`':
            key = self.quoted("quoted key")
            if not key:
                self.fail(at, "empty key")
            return key
        m = _KEY.match(self.text, at)
        if m is None:
            self.fail(at, f"expected a key after {_quote(prefix + '.')}")
        self.pos = m.end()
        return m.group()

    def attribute(self, name: str, at: int) -> str:
        lower = name.lower()
        canonical = _ATTRIBUTE_ALIASES.get(lower, lower)
        if canonical not in ATTRIBUTES:
            names = ", ".join([*ATTRIBUTES, *_ATTRIBUTE_ALIASES])
            self.fail(
                at,
                f"unknown identifier {_quote(name)}: expected metrics.<key>, params.<key>, "
                f"tags.<key> or an attribute ({names})",
            )
        return canonical

    # ---- operators and values

    def operator(self, ident: str) -> tuple[str, int]:
        at = self.skip_ws()
        if at >= self.n:
            self.fail(at, f"expected an operator after {_quote(ident)}")
        m = _SYMBOLS.match(self.text, at)
        if m is not None:
            symbol = m.group()
            op = _SYMBOL_OPS.get(symbol)
            if op is None:
                hint = " (use '=')" if symbol == "==" else f"; expected one of {_ALL_OPS_TEXT}"
                self.fail(at, f"unknown operator {_quote(symbol)}{hint}")
            self.pos = m.end()
            return op, at
        w = _WORD.match(self.text, at)
        if w is None:
            self.fail(
                at,
                f"expected an operator after {_quote(ident)}, found {self.snippet(at)}; "
                f"expected one of {_ALL_OPS_TEXT}",
            )
        word = w.group().lower()
        self.pos = w.end()
        if word in ("like", "ilike", "in"):
            return word.upper(), at
        if word == "not":
            if self.accept_keyword("like"):
                return "NOT LIKE", at
            if self.accept_keyword("ilike"):
                return "NOT ILIKE", at
            if self.accept_keyword("in"):
                return "NOT IN", at
            self.fail(self.skip_ws(), "expected LIKE, ILIKE or IN after NOT")
        if word == "is":
            negated = self.accept_keyword("not")
            if not self.accept_keyword("null"):
                self.fail(self.skip_ws(), f"expected {'NULL' if negated else 'NULL or NOT NULL'}")
            return ("IS NOT NULL" if negated else "IS NULL"), at
        self.fail(at, f"unknown operator {_quote(w.group())}; expected one of {_ALL_OPS_TEXT}")

    def value(self, after: str) -> tuple[Scalar, int]:
        at = self.skip_ws()
        if at >= self.n:
            self.fail(at, f"expected a value after {after}")
        c = self.text[at]
        if c in "'\"":
            return self.quoted("string"), at
        m = _NUMBER.match(self.text, at)
        if m is not None:
            end = m.end()
            if end < self.n and (self.text[end].isalnum() or self.text[end] in "_."):
                self.fail(at, f"malformed number {self.snippet(at)}")
            self.pos = end
            return _number(m.group()), at
        w = _WORD.match(self.text, at)
        if w is not None:
            word = w.group()
            if word.lower() == "null":
                self.fail(at, "NULL is not a value: use IS NULL or IS NOT NULL")
            if word.lower() in ("and", "or", "not", "in", "like", "ilike", "is"):
                self.fail(at, f"expected a value after {after}")
            self.fail(at, f"expected a value after {after}: strings must be quoted, e.g. '{word}'")
        self.fail(at, f"expected a value after {after}, found {self.snippet(at)}")

    def value_list(self, op: str) -> list[tuple[Scalar, int]]:
        open_at = self.skip_ws()
        if open_at >= self.n or self.text[open_at] != "(":
            self.fail(open_at, f"expected '(' and a list of values after {op}")
        self.pos += 1
        if self.skip_ws() < self.n and self.text[self.pos] == ")":
            self.fail(open_at, f"empty {op} list: give at least one value")
        values: list[tuple[Scalar, int]] = []
        while True:
            values.append(self.value(_quote(",") if values else f"{op} ("))
            at = self.skip_ws()
            if at < self.n and self.text[at] == ",":
                self.pos += 1
                continue
            if at < self.n and self.text[at] == ")":
                self.pos += 1
                return values
            if at >= self.n:
                self.fail(open_at, f"unbalanced parentheses: the {op} list is never closed")
            self.fail(at, f"expected ',' or ')' in the {op} list, found {self.snippet(at)}")

    # ---- grammar

    def parse_filter(self) -> Node:
        node = self.or_expr(None)
        at = self.skip_ws()
        if at < self.n:
            if self.text[at] == ")":
                self.fail(at, "unbalanced parentheses: ')' has no matching '('")
            self.fail(
                at, f"unexpected {self.snippet(at)}: expected AND, OR or the end of the filter"
            )
        return node

    def or_expr(self, after: str | None) -> Node:
        items = [self.and_expr(after)]
        while self.accept_keyword("or"):
            items.append(self.and_expr("OR"))
        return _combine(Or, items)

    def and_expr(self, after: str | None) -> Node:
        items = [self.atom(after)]
        while self.accept_keyword("and"):
            items.append(self.atom("AND"))
        return _combine(And, items)

    def atom(self, after: str | None) -> Node:
        at = self.skip_ws()
        if at < self.n and self.text[at] == "(":
            if self.depth >= _MAX_DEPTH:
                self.fail(at, f"parentheses nested deeper than {_MAX_DEPTH} levels")
            self.depth += 1
            self.pos += 1
            node = self.or_expr("'('")
            close = self.skip_ws()
            if close >= self.n:
                self.fail(at, "unbalanced parentheses: '(' is never closed")
            if self.text[close] != ")":
                self.fail(close, f"unexpected {self.snippet(close)}: expected AND, OR or ')'")
            self.pos += 1
            self.depth -= 1
            return node
        return self.comparison(after)

    def comparison(self, after: str | None) -> Comparison:
        kind, key, start = self.identifier("a comparison such as metrics.auc > 0.9", after)
        ident = self.text[start : self.pos]
        op, op_at = self.operator(ident)
        if op in _NULL_OPS:
            values: list[tuple[Scalar, int]] = []
        elif op in _LIST_OPS:
            values = self.value_list(op)
        else:
            values = [self.value(_quote(self.text[op_at : self.pos]))]
        return self.typed(kind, key, op, op_at, values)

    # ---- type checks

    def typed(
        self, kind: Kind, key: str, op: str, op_at: int, values: list[tuple[Scalar, int]]
    ) -> Comparison:
        if kind == "metric":
            allowed, vtype, nullable = _NUMERIC_OPS | _LIST_OPS, "number", True
        elif kind in ("param", "tag"):
            allowed, vtype, nullable = _NUMERIC_OPS | _PATTERN_OPS | _LIST_OPS, "string", True
        else:
            atype, nullable = ATTRIBUTES[key]
            vtype = atype
            if atype == "number":
                allowed = _NUMERIC_OPS | _LIST_OPS
            elif atype == "string":
                allowed = _NUMERIC_OPS | _PATTERN_OPS | _LIST_OPS
            else:
                allowed = _EQUALITY_OPS | _LIST_OPS
        if nullable:
            allowed = allowed | _NULL_OPS
        what = f"{kind} {_quote(key)}" if kind != "attribute" else _quote(key)
        if op not in allowed:
            self.fail(op_at, f"operator {op} is not supported for {what}")
        checked = tuple(self.check_value(kind, key, vtype, v, at) for v, at in values)
        if op in _NULL_OPS:
            return Comparison(kind, key, op, None)
        if op in _LIST_OPS:
            return Comparison(kind, key, op, checked)
        return Comparison(kind, key, op, checked[0])

    def check_value(self, kind: Kind, key: str, vtype: str, value: Scalar, at: int) -> Scalar:
        if vtype == "number":
            if isinstance(value, str):
                name = f"metric {_quote(key)}" if kind == "metric" else _quote(key)
                self.fail(at, f"{name} is compared with numbers, not the string {_quote(value)}")
            if kind == "attribute" and isinstance(value, int):
                self.check_int64(value, at)
            return value
        if vtype == "string":
            if not isinstance(value, str):
                raw = _NUMBER.match(self.text, at)
                name = _quote(key) if kind == "attribute" else f"{kind} {_quote(key)}"
                example = f", e.g. '{raw.group()}'" if raw is not None else ""
                self.fail(at, f"{name} is compared as a string: quote the value{example}")
            return value
        if vtype == "status":
            text = value.upper() if isinstance(value, str) else None
            if text not in _STATUSES:
                self.fail(at, f"status must be one of {', '.join(_STATUSES)}")
            return text
        # experiment_id: an integer or a string of digits, normalised to a string
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            number = int(value.strip())
        elif isinstance(value, int):
            number = value
        else:
            self.fail(at, "experiment_id must be an integer")
        self.check_int64(number, at)
        return str(number)

    def check_int64(self, value: int, at: int) -> None:
        if not _INT64_MIN <= value <= _INT64_MAX:
            self.fail(at, "integer out of range")

    # ---- order_by

    def parse_order_key(self) -> OrderKey:
        kind, key, _ = self.identifier("a sort key such as metrics.auc or start_time", None)
        ascending = True
        if not self.at_end():
            m = self.peek_word()
            word = m.group().lower() if m is not None else ""
            if word not in ("asc", "desc"):
                self.fail(self.pos, f"expected ASC or DESC, found {self.snippet(self.pos)}")
            assert m is not None
            self.pos = m.end()
            ascending = word == "asc"
            if not self.at_end():
                self.fail(self.pos, f"unexpected {self.snippet(self.pos)} after {word.upper()}")
        return OrderKey(kind, key, ascending)


def _number(text: str) -> int | float:
    if _INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than int() accepts from a string
            return float(text)
    return float(text)


def _combine(cls: type[And] | type[Or], items: list[Node]) -> Node:
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


# -- public API -----------------------------------------------------------------------------------


def parse_filter(text: str | None) -> Node | None:
    """Parse a run filter (grammar in the module docstring); None or blank gives None.

    Raises :class:`~dockyard.core.errors.InvalidInput` (``details["position"]`` is the 0-based
    offset of the offending spot) on a malformed filter.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput(f"invalid filter: expected a string, got {type(text).__name__}")
    if not text.strip():
        return None
    parser = _Parser(text, "invalid filter", {})
    if "\x00" in text:
        # No database stores a NUL in text (PostgreSQL refuses it), so no value can match one.
        parser.fail(text.index("\x00"), "NUL characters are not allowed in a filter")
    return parser.parse_filter()


def parse_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse ``order_by`` items such as ``"metrics.auc DESC"``; None gives ``[]``.

    A single string is taken as one item. Raises
    :class:`~dockyard.core.errors.InvalidInput` naming the bad item (``details`` has ``item``,
    ``index`` and ``position``).
    """
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    keys: list[OrderKey] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInput(
                f"invalid order_by item {item!r}: expected a string such as 'metrics.auc DESC'",
                item=repr(item),
                index=index,
            )
        parser = _Parser(item, f"invalid order_by item {item!r}", {"item": item, "index": index})
        keys.append(parser.parse_order_key())
    return keys
