"""Questions about a SELECT's shape that several rules ask: how many rows can it return?"""

from __future__ import annotations

import functools
import re
from typing import Any

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.schema import Schema


def reads_a_table(text: str) -> bool:
    """Whether a statement's printed tree has a FROM anywhere (a gate, `SQL_GATES`/`QUERY_GATE`):
    `SELECT 1`, `SELECT f($1)` and `INSERT ... VALUES` read no table, so no rule about how a query
    reads its tables can find anything in them (half the SELECTs and most INSERTs of PostgreSQL's
    regression suite)."""
    return '"fromClause"' in text


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
    One row per item the caller passed in, or per value of the type. `SELECT DISTINCT` of the
    keys of JSON documents is a vocabulary of names too (`_json_key_vocabulary`)."""
    tables = n.range_tables(body.get("fromClause"))
    distinct = [item for item in body.get("distinctClause") or () if item]
    if body.get("distinctClause") and not distinct and _json_key_vocabulary(body.get("targetList")):
        return True
    groups = [n.column(item) for item in body.get("groupClause") or distinct]
    if not groups or not all(groups):
        return False
    pinned = {column for columns in equality_columns(body.get("whereClause"), tables, lists=True).values()
              for column in columns}
    return all(group[1] in pinned or schema.few_values(n.table_of(group, tables), group[1])
               for group in groups if group)


_KEY_FUNCTIONS = frozenset({"jsonb_object_keys", "json_object_keys"})


def _json_key_vocabulary(targets: list[Any] | None) -> bool:
    """`SELECT DISTINCT jsonb_object_keys(doc)`: the set of key names the documents use, which
    grows with their shape (a schema, a handful of names), not with the number of rows."""
    values = [n.unwrap(target)[1].get("val") for target in targets or ()]
    while values and any(n.unwrap(value)[0] == "TypeCast" for value in values):
        values = [n.unwrap(value)[1].get("arg") if n.unwrap(value)[0] == "TypeCast" else value for value in values]
    return bool(values) and all(n.unwrap(value)[0] == "FuncCall"
                                and (n.strings(n.unwrap(value)[1].get("funcname")) or [""])[-1] in _KEY_FUNCTIONS
                                for value in values)


def driven_by_input(body: dict[str, Any], ctes: dict[str, Any] | None = None) -> bool:
    """Every row matches a row of a bounded source: FROM starts with (or inner-joins on a
    condition) a set-returning function of the caller's values only (`FROM unnest($1) AS t(id)
    LEFT JOIN ...`), or a CTE or subquery that is bounded itself: by its own LIMIT, by being an
    aggregate, or by the caller's list the same way (`WITH ids AS (SELECT unnest(%s) AS id)
    SELECT ... FROM t JOIN ids ON ...`). The rows follow the list or the limit (times each
    item's matches, as with `IN (list)`), not the size of the table."""
    scope = dict(ctes or {})
    for cte in (body.get("withClause") or {}).get("ctes", []):
        inner = n.unwrap(cte)[1]
        scope[inner.get("ctename")] = inner.get("ctequery")
    return any(_bounded_item(item, scope) for item in _row_sources(body.get("fromClause")))


def _row_sources(from_clause: list[Any] | None) -> list[Any]:
    """The FROM items every result row must match: the first item; inside it, both sides of an
    inner join on a condition, the preserved side of an outer join (a cross join bounds nothing)."""
    found: list[Any] = []
    stack = list(from_clause or ())[:1]
    while stack:
        item = stack.pop()
        kind, body = n.unwrap(item)
        if kind != "JoinExpr":
            found.append(item)
            continue
        conditioned = bool(body.get("quals") or body.get("usingClause") or body.get("isNatural"))
        join = body.get("jointype", "JOIN_INNER")
        if join in ("JOIN_INNER", "JOIN_LEFT") and (conditioned or join == "JOIN_LEFT"):
            stack.append(body.get("larg"))
        if join in ("JOIN_INNER", "JOIN_RIGHT") and (conditioned or join == "JOIN_RIGHT"):
            stack.append(body.get("rarg"))
    return found


def _bounded_item(item: Any, ctes: dict[str, Any]) -> bool:
    kind, body = n.unwrap(item)
    if kind == "RangeFunction":
        return all(n.is_value(function) for function in body.get("functions", []))
    if kind == "RangeSubselect":
        return _bounded_query(body.get("subquery"), ctes)
    if kind == "RangeVar" and not body.get("schemaname") and body.get("relname") in ctes:
        name = body["relname"]
        return _bounded_query(ctes[name], {key: value for key, value in ctes.items() if key != name})
    return False


def _bounded_query(query: Any, ctes: dict[str, Any]) -> bool:
    """A CTE's or subquery's rows are bounded: LIMIT, an aggregate, a VALUES list, a SELECT of the
    caller's values without FROM (`SELECT unnest(%s)`), a set operation of bounded sides, or rows
    driven by a bounded source (`driven_by_input`)."""
    kind, body = n.unwrap(query)
    if kind != "SelectStmt":
        return False
    if body.get("op", "SETOP_NONE") != "SETOP_NONE":
        return _bounded_query({"SelectStmt": body.get("larg")}, ctes) and \
            _bounded_query({"SelectStmt": body.get("rarg")}, ctes)
    if body.get("limitCount") or body.get("valuesLists") or is_aggregate(body):
        return True
    if not body.get("fromClause"):
        return all(n.is_value(n.unwrap(target)[1].get("val")) for target in body.get("targetList", []))
    return driven_by_input(body, ctes)


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
    top = n.range_tables(body.get("fromClause")).values()
    if any(name and not name.startswith(("pg_catalog.", "information_schema."))
           and not name.rpartition(".")[2].startswith("pg_") for name in top):
        return False  # a user table at the top level settles it without a walk
    relations = [relation for kind, relation in n.walk(body.get("fromClause")) if kind == "RangeVar"]
    return bool(relations) and all(
        relation.get("schemaname") in ("pg_catalog", "information_schema")
        or relation.get("relname", "").startswith("pg_") for relation in relations)


_AIOSQL_NAME = re.compile(r"--\s*name:\s*\S*?([\^$]|<!)\s*$")


@functools.lru_cache(maxsize=4)
def _aiosql_lines(text: str) -> tuple[str, ...]:
    """The lines of a file that names aiosql queries (none otherwise), split once per file: the
    question is asked of every statement, and a file of thousands must not be split thousands
    of times (a str's hash is cached, so the lookup is constant time)."""
    return tuple(text.splitlines()) if "name:" in text else ()


def aiosql_single_row(query: Any, text: str) -> bool:
    """An aiosql query whose `-- name:` comment ends in `^` (one row), `$` (one value) or `<!`
    (insert returning one row): the caller never receives more than one row."""
    lines = _aiosql_lines(text)
    if not lines:
        return False
    line = query.position(0)[0]
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


_FREE_TEXT = ("text", "varchar", "character varying", "citext", "bpchar", "character")


def duplicate_lookup(body: dict[str, Any], table: Any, tables: dict[str, str | None], order: list[str]) -> bool:
    """WHERE gives every column that holds the row's content, two or more of them free text
    (`WHERE lower(recording) = lower($1) AND lower(artist) = lower($2) AND (release = $3 OR
    release IS NULL AND $3 IS NULL) ... ORDER BY submitted LIMIT 1`): only single-column unique
    keys (the id, a generated uuid) and the sort columns are left free, so the matches are copies
    of one logical row and `ORDER BY ... LIMIT 1` picks among a handful of duplicates. A child row
    whose only content is its parent's reference (`WHERE user_id = $1 ORDER BY created`) is not one."""
    pinned = {column for owner, column in _pins(body.get("whereClause"), tables) if owner == table.name}
    surrogate = {key[0] for key in table.unique_keys() if len(key) == 1}
    content = [column for column in table.columns if column not in surrogate and column not in order]
    text = [column for column in content if table.columns[column].lower().startswith(_FREE_TEXT)]
    return bool(content) and len(text) >= 2 and all(column in pinned for column in content)


def _pins(term: Any, tables: dict[str, str | None]) -> set[tuple[str, str]]:
    """(table, column) pairs `term` pins to one value each: `col = v` or `f(col) = f(v)`, `col IS
    NULL`; an AND pins what any of its terms pins, an OR what every branch pins (the NULL-safe
    `col = v OR (col IS NULL AND v IS NULL)`)."""
    kind, body = n.unwrap(term)
    if kind == "BoolExpr":
        parts = [_pins(arg, tables) for arg in body.get("args", [])]
        if body.get("boolop") == "AND_EXPR":
            return set().union(*parts)
        return set.intersection(*parts) if body.get("boolop") == "OR_EXPR" and parts else set()
    sides: list[tuple[Any, Any]] = []
    if kind == "A_Expr" and body.get("kind") == "AEXPR_OP" and n.operator(body) == "=":
        sides = [(body.get("lexpr"), body.get("rexpr")), (body.get("rexpr"), body.get("lexpr"))]
    elif kind == "NullTest" and body.get("nulltesttype") == "IS_NULL":
        sides = [(body.get("arg"), {"A_Const": {"isnull": True}})]
    found: set[tuple[str, str]] = set()
    for side, other in sides:
        inside = [n.column({name: node}) for name, node in n.walk(side) if name == "ColumnRef"]
        owner = n.table_of(inside[0], tables) if len(inside) == 1 and inside[0] else None
        if owner and inside[0] and n.is_value(other):
            found.add((owner, inside[0][1]))
    return found
