"""Questions about a SELECT's shape that several rules ask: how many rows can it return?"""

from __future__ import annotations

import re
from typing import Any

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.schema import Schema


def equality_columns(where: Any, tables: dict[str, str | None], *, lists: bool = False,
                     expressions: bool = False) -> dict[str, set[str]]:
    """Columns compared for equality with a value, by table. With `lists`, also columns compared
    with a list the caller supplies (`col = ANY($1)`, `col IN ($1, $2)`): as many rows as items.
    With `expressions`, an expression of one column (`lower(email) = $1`) counts too, under its
    canonical text, which is how an expression index keeps its key."""
    found: dict[str, set[str]] = {}
    for term in n.conjuncts(where):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or n.operator(expr) != "=":
            continue
        pairs: list[tuple[Any, Any]]
        if expr.get("kind") == "AEXPR_OP":
            pairs = [(expr.get("lexpr"), expr.get("rexpr")), (expr.get("rexpr"), expr.get("lexpr"))]
        elif lists and expr.get("kind") in ("AEXPR_OP_ANY", "AEXPR_IN"):
            pairs = [(expr.get("lexpr"), expr.get("rexpr"))]
        else:
            continue
        for side, other in pairs:
            reference = n.column(side)
            key = reference[1] if reference else None
            if reference is None and expressions:
                inside = [n.column({kind: node}) for kind, node in n.walk(side) if kind == "ColumnRef"]
                reference = inside[0] if len(inside) == 1 else None
                key = n.canonical(side) if reference else None
            table = n.table_of(reference, tables) if reference else None
            if key and table and n.is_value(other):
                found.setdefault(table, set()).add(key)
    return found


def unique_lookup(body: dict[str, Any], schema: Schema, *, lists: bool = False) -> bool:
    """Equality on every column of a unique key of the one table in FROM: at most one row (with
    `lists`, one per item of the caller's list; and a key column of an enum or boolean type may
    stay free: a handful of rows). Without a schema for the table, equality on its `id` counts
    (the near-universal primary key). Lateral subqueries beside the table add no rows."""
    tables = n.range_tables(body.get("fromClause"))
    real = {name for name in tables.values() if name is not None}
    joined_to_one = _to_one_joins(body, tables, schema)
    if len(real - joined_to_one) != 1:
        return False
    for table_name, columns in equality_columns(body.get("whereClause"), tables, lists=lists,
                                                 expressions=True).items():
        if table_name in joined_to_one:
            continue
        table = schema.table(table_name)
        if table is None:
            if "id" in columns:
                return True
        elif any(key and all(column in columns or (lists and schema.few_values(table_name, column))
                             for column in key) for key in _unique_keys(table)):
            return True
    return False


def _unique_keys(table: Any) -> list[tuple[str, ...]]:
    """Unique keys, expression keys (`lower(email)`) included under their canonical text."""
    return [index.keys for index in table.indexes.values() if (index.unique or index.primary) and not index.predicate]


def _to_one_joins(body: dict[str, Any], tables: dict[str, str | None], schema: Schema) -> set[str]:
    """Tables joined on equality with the whole of one of their unique keys (`JOIN album al ON
    al.id = t.album_id`): at most one row each per row of the rest, so they add no rows."""
    found: set[str] = set()
    for qual in n.join_quals(body.get("fromClause")):
        pinned: dict[str, set[str]] = {}
        for term in n.conjuncts(qual):
            kind, expr = n.unwrap(term)
            if kind != "A_Expr" or expr.get("kind") != "AEXPR_OP" or n.operator(expr) != "=":
                continue
            left, right = n.column(expr.get("lexpr")), n.column(expr.get("rexpr"))
            for mine, theirs in ((left, right), (right, left)):
                table = n.table_of(mine, tables) if mine else None
                if table and theirs and n.table_of(theirs, tables) not in (None, table):
                    pinned.setdefault(table, set()).add(mine[1])
        for table_name, columns in pinned.items():
            table = schema.table(table_name)
            keys = table.unique_keys() if table is not None else [("id",)]
            if any(key and set(key) <= columns for key in keys):
                found.add(table_name)
    return found


def bounded_groups(body: dict[str, Any], schema: Schema) -> bool:
    """GROUP BY (or DISTINCT ON) only columns that take few values: pinned to the caller's values
    or list (`WHERE k = ANY($1) GROUP BY k`), or of an enum or boolean type (`GROUP BY status`).
    One row per item the caller passed in, or per value of the type."""
    tables = n.range_tables(body.get("fromClause"))
    distinct = [item for item in body.get("distinctClause") or () if item]
    groups = [n.column(item) for item in body.get("groupClause") or distinct]
    if not groups or not all(groups):
        return False
    pinned = {column for columns in equality_columns(body.get("whereClause"), tables, lists=True).values()
              for column in columns}
    return all(group[1] in pinned or schema.few_values(n.table_of(group, tables), group[1])
               for group in groups if group)


def limited_source(body: dict[str, Any]) -> bool:
    """FROM starts with a CTE that has its own LIMIT (`WITH page AS (... LIMIT $1) SELECT ...
    FROM page JOIN ...`): the rows are already bounded."""
    limited = {n.unwrap(cte)[1].get("ctename") for cte in (body.get("withClause") or {}).get("ctes", [])
               if n.unwrap(n.unwrap(cte)[1].get("ctequery"))[1].get("limitCount")}
    items = list(body.get("fromClause") or ())
    while items and n.unwrap(items[0])[0] == "JoinExpr":
        items = [n.unwrap(items[0])[1].get("larg")]
    kind, item = n.unwrap(items[0]) if items else ("", {})
    return kind == "RangeVar" and not item.get("schemaname") and item.get("relname") in limited


def driven_by_input(body: dict[str, Any]) -> bool:
    """FROM starts with a set-returning function of the caller's values only (`FROM unnest($1) AS
    t(id) LEFT JOIN ...`): the rows follow the list the caller passed in."""
    items = list(body.get("fromClause") or ())
    while items:
        kind, item = n.unwrap(items[0])
        if kind != "JoinExpr":
            break
        items = [item.get("larg")]
    kind, item = n.unwrap(items[0]) if items else ("", {})
    return kind == "RangeFunction" and all(n.is_value(function) for function in item.get("functions", []))


def limited_to_one(body: dict[str, Any]) -> bool:
    return n.constant(body.get("limitCount")) == 1


def is_aggregate(body: dict[str, Any]) -> bool:
    """An aggregate without GROUP BY: one row whatever the table holds, also when the aggregate
    sits inside an expression (`count(*)::int`, `CASE WHEN count(*) > 0 ...`, `coalesce(max(id), 0)`)."""
    if body.get("groupClause"):
        return False
    return any(_has_aggregate(n.unwrap(target)[1].get("val")) for target in body.get("targetList", []))


def _has_aggregate(node: Any) -> bool:
    """An aggregate call in `node`, not counting those of nested subqueries (their own scope)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if n.is_aggregate_call(item):
            return True
        kind, inner = n.unwrap(item)
        if kind == "SubLink":
            continue
        for value in (inner or (item if isinstance(item, dict) else {})).values():
            if isinstance(value, dict):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(value)
    return False


def reads_only_system_catalogs(body: dict[str, Any]) -> bool:
    """Every table read is a system catalog or statistics view (`pg_*`, information_schema):
    monitoring code, whose result size is bounded by the server, not by user data."""
    relations = [relation for kind, relation in n.walk(body.get("fromClause")) if kind == "RangeVar"]
    return bool(relations) and all(
        relation.get("schemaname") in ("pg_catalog", "information_schema")
        or relation.get("relname", "").startswith("pg_") for relation in relations)


_AIOSQL_NAME = re.compile(r"--\s*name:\s*\S*?([\^$]|<!)\s*$")


def aiosql_single_row(query: Any, text: str) -> bool:
    """An aiosql query whose `-- name:` comment ends in `^` (one row), `$` (one value) or `<!`
    (insert returning one row): the caller never receives more than one row."""
    line = query.position(0)[0]
    lines = text.splitlines()
    for number in range(line - 2, max(line - 12, -1), -1):
        stripped = lines[number].strip() if 0 <= number < len(lines) else ""
        if not stripped.startswith("--"):
            return False
        match = _AIOSQL_NAME.match(stripped)
        if stripped.lower().startswith(("-- name:", "--name:")):
            return match is not None
    return False


def keyset_hint(body: dict[str, Any], schema: Schema, *, action: str) -> str:
    """The keyset-pagination fix in the statement's own names: its ORDER BY columns (else the
    primary key of its one table), e.g. `WHERE (created_on, id) < (:last_created_on, :last_id)`;
    never another schema's column names."""
    order = [n.column(n.unwrap(item)[1].get("node")) for item in body.get("sortClause") or ()]
    columns = [reference[1] for reference in order if reference]
    descending = any(n.unwrap(item)[1].get("sortby_dir") == "SORTBY_DESC" for item in body.get("sortClause") or ())
    tables = [name for name in n.range_tables(body.get("fromClause")).values() if name]
    if not columns or len(columns) != len(order):
        table = schema.table(tables[0]) if len(tables) == 1 else None
        columns = list(table.primary_key) if table is not None else []
        descending = False
    if not columns:
        where = f" of {tables[0]}" if len(tables) == 1 else ""
        return (f"{action}: ORDER BY a unique key{where} and continue after the last row seen: "
                "WHERE key > :last_key ORDER BY key LIMIT n")
    key = ", ".join(columns)
    last = ", ".join(f":last_{column}" for column in columns)
    tuple_key, tuple_last = (f"({key})", f"({last})") if len(columns) > 1 else (key, last)
    return (f"{action}: WHERE {tuple_key} {'<' if descending else '>'} {tuple_last} "
            f"ORDER BY {key}{' DESC' if descending else ''} LIMIT n (values of the last row of the previous page)")


def list_lookup(body: dict[str, Any], schema: Schema) -> bool:
    """WHERE pins a column of a table the schema does not describe to the caller's list (`t.gid
    IN %s`, `= ANY($1)`): a batch lookup by identifiers, bounded by the list. (On a described
    table, `unique_lookup(lists=True)` decides from its keys.)"""
    tables = n.range_tables(body.get("fromClause"))
    for term in n.conjuncts(body.get("whereClause")):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or expr.get("kind") not in ("AEXPR_IN", "AEXPR_OP_ANY") or n.operator(expr) != "=":
            continue
        reference = n.column(expr.get("lexpr"))
        table = n.table_of(reference, tables) if reference else None
        if table and schema.table(table) is None and n.is_value(expr.get("rexpr")):
            return True
    return False
