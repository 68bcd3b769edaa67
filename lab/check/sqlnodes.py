"""Small readers over libpg_query JSON trees, shared by the rules.

A node is a one-key dict `{"Type": body}`; typed fields (a statement's `relation`, a column's
`typeName`) hold the body directly. These helpers take either a wrapper or a body where it is
unambiguous and answer the questions rules keep asking: which column, which table, which
constant, which conjuncts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

Node = dict[str, Any]
AGGREGATES = frozenset({"count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or",
                        "every", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "stddev",
                        "variance", "max_by", "min_by"})


_EMPTY: Node = {}


def unwrap(node: Any) -> tuple[str, Node]:
    """(type, body) of a wrapped node; ("", {}) for anything else."""
    if type(node) is dict and len(node) == 1:
        [(key, value)] = node.items()  # rules ask this of every node they look at: kept bare
        if type(value) is dict and key[:1].isupper():
            return key, value
    return "", _EMPTY


def walk(node: Any) -> Iterator[tuple[str, Node]]:
    """Every wrapped node under `node` (itself included), iteratively: deep trees are fine."""
    stack = [node]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, value in item.items():
                inner = type(value)
                if inner is dict:
                    if key[:1].isupper():
                        yield key, value
                    stack.append(value)
                elif inner is list:
                    stack.extend(value)
        elif kind is list:
            stack.extend(item)


def strings(items: list[Any] | None) -> list[str]:
    """The `sval`s of a list of String nodes (qualified names, operator names)."""
    return [item["String"].get("sval", "") for item in items or () if "String" in item]


def column(node: Any) -> tuple[str | None, str] | None:
    """(qualifier, column) of a plain column reference, else None."""
    body = node.get("ColumnRef") if type(node) is dict else None
    if body is None:
        return None
    fields = body.get("fields", [])
    names = strings(fields)
    if len(names) != len(fields) or not names:
        return None  # `t.*` or `*`
    return (names[-2] if len(names) > 1 else None), names[-1]


def operator(body: Node) -> str:
    names = strings(body.get("name"))
    return names[-1] if names else ""


def param_number(node: Any) -> int | None:
    kind, body = unwrap(node)
    if kind == "TypeCast":
        return param_number(body.get("arg"))
    return int(body.get("number", 0)) if kind == "ParamRef" else None


def constant(node: Any) -> Any:
    """The Python value of a constant (through casts), or None when it is not one."""
    kind, body = unwrap(node)
    if kind == "TypeCast":
        return constant(body.get("arg"))
    if kind != "A_Const" or body.get("isnull"):
        return None
    for field, inner in (("ival", "ival"), ("sval", "sval"), ("fval", "fval"), ("boolval", "boolval")):
        if field in body:
            value = body[field].get(inner, 0 if field == "ival" else False if field == "boolval" else "")
            return float(value) if field == "fval" else value
    return None


_VALUES = frozenset({"A_Const", "ParamRef"})
_NOT_VALUES = frozenset({"ColumnRef", "SubLink"})


def is_value(node: Any) -> bool:
    """A parameter, a constant or a function of them only (no column of any table)."""
    if type(node) is dict and len(node) == 1:
        key = next(iter(node))
        if key in _VALUES:
            return True
        if key in _NOT_VALUES:
            return False
    return not any(kind in _NOT_VALUES for kind, _ in walk(node))


def conjuncts(where: Any) -> list[Any]:
    """Top-level AND terms of a WHERE/ON clause."""
    kind, body = unwrap(where)
    if kind == "BoolExpr" and body.get("boolop") == "AND_EXPR":
        return [term for arg in body.get("args", []) for term in conjuncts(arg)]
    return [where] if where else []


def relation_name(body: Node) -> str:
    """`schema.table` or `table` of a RangeVar body (public is implied)."""
    schema = body.get("schemaname")
    name = body.get("relname", "")
    return f"{schema}.{name}" if schema and schema != "public" else name


_RANGE_TABLES: dict[int, tuple[Any, dict[str, str | None]]] = {}


def range_tables(from_clause: list[Any] | None) -> dict[str, str | None]:
    """Alias (or table name) -> table, for the FROM list of one query level; subqueries map to None.
    Several rules ask it of the same FROM list: the answer is kept for the last few lists (the
    list itself is held with it, so its id cannot be reused while the entry lives) and a copy
    handed out."""
    if not from_clause:
        return {}
    entry = _RANGE_TABLES.get(id(from_clause))
    if entry is not None and entry[0] is from_clause:
        return dict(entry[1])
    if len(_RANGE_TABLES) > 64:
        _RANGE_TABLES.clear()
    tables = _range_tables(from_clause)
    _RANGE_TABLES[id(from_clause)] = (from_clause, tables)
    return dict(tables)


def _range_tables(from_clause: list[Any]) -> dict[str, str | None]:
    tables: dict[str, str | None] = {}
    stack = list(from_clause or ())
    while stack:
        kind, body = unwrap(stack.pop())
        if kind == "RangeVar":
            alias = (body.get("alias") or {}).get("aliasname")
            tables[alias or body.get("relname", "")] = relation_name(body)
        elif kind == "JoinExpr":
            stack += [body.get("larg"), body.get("rarg")]
        elif kind in ("RangeSubselect", "RangeFunction"):
            alias = (body.get("alias") or {}).get("aliasname")
            if alias:
                tables[alias] = None
    return tables


def join_quals(from_clause: list[Any] | None) -> list[Any]:
    """The ON conditions of every join in a FROM list."""
    quals = []
    stack = list(from_clause or ())
    while stack:
        kind, body = unwrap(stack.pop())
        if kind == "JoinExpr":
            if body.get("quals"):
                quals.append(body["quals"])
            stack += [body.get("larg"), body.get("rarg")]
    return quals


def table_of(reference: tuple[str | None, str], tables: dict[str, str | None]) -> str | None:
    """The table a column reference belongs to: by qualifier, or the only table in scope."""
    qualifier, _ = reference
    if qualifier is not None:
        return tables.get(qualifier)
    real = [table for table in tables.values() if table]
    return real[0] if len(real) == 1 and len(tables) == 1 else None


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        kind, body = unwrap(node)
        if kind == "ColumnRef":
            names = strings(body.get("fields"))
            return {"ColumnRef": names[-1:] if names else []}
        return {key: _strip(value) for key, value in node.items() if key != "location"}
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def canonical(node: Any) -> str:
    """A comparable text for an expression: locations dropped, columns unqualified, so the
    `lower(u.email)` of a query matches the `lower(email)` of an index."""
    return json.dumps(_strip(node), sort_keys=True)


def is_aggregate_call(node: Any) -> bool:
    kind, body = unwrap(node)
    return kind == "FuncCall" and not body.get("over") and (strings(body.get("funcname")) or [""])[-1] in AGGREGATES


def location(node: Any) -> int | None:
    _, body = unwrap(node)
    value = body.get("location") if body else (node.get("location") if isinstance(node, dict) else None)
    return value if isinstance(value, int) and value >= 0 else None
