"""Questions about a SELECT's shape that several rules ask: how many rows can it return?"""

from __future__ import annotations

from typing import Any

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.schema import Schema


def equality_columns(where: Any, tables: dict[str, str | None]) -> dict[str, set[str]]:
    """Columns compared for equality with a value, by table."""
    found: dict[str, set[str]] = {}
    for term in n.conjuncts(where):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or expr.get("kind") != "AEXPR_OP" or n.operator(expr) != "=":
            continue
        for side, other in ((expr.get("lexpr"), expr.get("rexpr")), (expr.get("rexpr"), expr.get("lexpr"))):
            reference = n.column(side)
            table = n.table_of(reference, tables) if reference else None
            if reference and table and n.is_value(other):
                found.setdefault(table, set()).add(reference[1])
    return found


def unique_lookup(body: dict[str, Any], schema: Schema) -> bool:
    """Equality on every column of a unique key of a table in FROM: at most one row per such table.
    Without a schema for the table, equality on its `id` counts (the near-universal primary key)."""
    tables = n.range_tables(body.get("fromClause"))
    for table_name, columns in equality_columns(body.get("whereClause"), tables).items():
        table = schema.table(table_name)
        if table is None:
            if "id" in columns and len(tables) == 1:
                return True
        elif any(key and set(key) <= columns for key in table.unique_keys()):
            return len(tables) == 1
    return False


def limited_to_one(body: dict[str, Any]) -> bool:
    return n.constant(body.get("limitCount")) == 1


def is_aggregate(body: dict[str, Any]) -> bool:
    """An aggregate without GROUP BY: one row whatever the table holds."""
    if body.get("groupClause"):
        return False
    return any(n.is_aggregate_call(n.unwrap(target)[1].get("val")) for target in body.get("targetList", []))


def reads_only_system_catalogs(body: dict[str, Any]) -> bool:
    """Every table read is a system catalog or statistics view (`pg_*`, information_schema):
    monitoring code, whose result size is bounded by the server, not by user data."""
    relations = [relation for kind, relation in n.walk(body.get("fromClause")) if kind == "RangeVar"]
    return bool(relations) and all(
        relation.get("schemaname") in ("pg_catalog", "information_schema")
        or relation.get("relname", "").startswith("pg_") for relation in relations)
