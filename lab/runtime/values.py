"""Representative parameter values, so that a statement is planned the way it runs.

pg_stat_statements keeps statements with their constants replaced by `$n`. A generic plan of such
a text (every parameter unknown) is often not the plan the application gets: the planner guesses
10 % for `LIMIT $1 OFFSET $2`, a partial index `WHERE status = 'in_transit'` cannot serve
`status = $2`, and an average customer stands in for the busiest one. The server's own column
statistics (pg_stats) say which values are common and how values spread, so each parameter compared
with a column gets a value read from them and the statement gets a custom plan for those values:

- `col = $n` (and `IN`, `= ANY`): a constant that a partial index on the table tests `col` against
  (the application queries by it, or the index would not exist), else the most common value (the
  busiest key: where a plan hurts most), else the median of the histogram;
- `col > $n` / `col < $n`: the histogram bound that keeps a tenth of the rows (range predicates on
  request paths select a recent or small slice; the whole table is a report);
- `LIMIT $n`: the rows per call pg_stat_statements counted (what the pages really return);
- `OFFSET $n`: nothing records it; 0 is used, and the evidence says so.

A parameter none of these covers (`now() - $2::interval`, an argument of a function) leaves the
statement with its generic plan, and the finding says which kind of plan it judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import ast as pg
from pglast import parse_sql
from pglast.enums import A_Expr_Kind
from pglast.parser import ParseError
from psycopg.rows import dict_row

from pglab.lab.core.sql import walk_nodes

_TYPE = (r"interval|date|time(?:stamp)?(?:tz)?(?:\s+with(?:out)?\s+time\s+zone)?|numeric|decimal|smallint|integer"
         r"|bigint|int[248]?|real|float[48]?|double\s+precision|boolean|bool|text|varchar|char|jsonb?|uuid|inet"
         r"|cidr|bytea|money")
_TYPED_LITERAL = re.compile(rf"\b({_TYPE})\s+\$(\d+)\b", re.IGNORECASE)
_PARAM = re.compile(r"\$(\d+)")
_EQUALITY = ("=", "ANY", "IN")
_ABOVE = (">", ">=")
_BELOW = ("<", "<=")


def untyped_literals(sql: str) -> str:
    """`interval $2` (how pg_stat_statements keeps `interval '90 days'`) as `$2::interval`: the
    typed-literal syntax takes a string constant only, so the normalised text does not parse."""
    return _TYPED_LITERAL.sub(lambda match: f"${match.group(2)}::{match.group(1)}", sql)


@dataclass(frozen=True)
class Binding:
    """What one parameter is compared with: a column of a table (or LIMIT / OFFSET)."""

    number: int
    operator: str  # "=", "<", ">=", "ANY", "IN", "limit", "offset", ...
    table: str | None = None
    column: str | None = None


def _param_number(node: Any) -> int | None:
    while isinstance(node, pg.TypeCast):
        node = node.arg
    return node.number if isinstance(node, pg.ParamRef) else None


def _column(node: Any) -> tuple[str | None, str] | None:
    while isinstance(node, pg.TypeCast):
        node = node.arg
    if not isinstance(node, pg.ColumnRef):
        return None
    names = [str(field.sval) for field in node.fields or () if isinstance(field, pg.String)]
    if not names:
        return None
    return (names[-2] if len(names) > 1 else None), names[-1]


def _tables(tree: Any) -> dict[str, str]:
    """alias or name -> table, for every table the statement reads."""
    found: dict[str, str] = {}
    for node in walk_nodes(tree):
        if isinstance(node, pg.RangeVar) and node.relname:
            found[node.relname] = node.relname
            if node.alias is not None and node.alias.aliasname:
                found[node.alias.aliasname] = node.relname
    return found


_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _comparisons(node: pg.A_Expr) -> list[tuple[int, str, tuple[str | None, str]]]:
    """(parameter, operator, column) for a comparison between a column and parameters."""
    operator = node.name[-1].sval if node.name else ""
    kind = node.kind
    if kind == A_Expr_Kind.AEXPR_OP_ANY:
        operator = "ANY" if operator == "=" else operator
    elif kind == A_Expr_Kind.AEXPR_IN:
        operator = "IN"
    elif kind != A_Expr_Kind.AEXPR_OP:
        return []
    column, other = _column(node.lexpr), node.rexpr
    if column is None:
        column, other = _column(node.rexpr), node.lexpr
        operator = _FLIPPED.get(operator, operator)
    if column is None:
        return []
    numbers = [_param_number(item) for item in (other if isinstance(other, tuple | list) else (other,))]
    return [(number, operator, column) for number in numbers if number is not None]


def bindings(sql: str) -> list[Binding] | None:
    """What each `$n` of a statement is compared with; None when it does not parse."""
    try:
        tree = parse_sql(untyped_literals(sql))
    except ParseError:
        return None
    tables = _tables(tree)
    found: list[Binding] = []
    for node in walk_nodes(tree):
        if isinstance(node, pg.A_Expr):
            for number, operator, (qualifier, column) in _comparisons(node):
                table = tables.get(qualifier) if qualifier else (next(iter(set(tables.values()))) if len(
                    set(tables.values())) == 1 else None)
                found.append(Binding(number, operator, table, column))
        elif isinstance(node, pg.SelectStmt):
            for clause, operator in ((node.limitCount, "limit"), (node.limitOffset, "offset")):
                limit_number = _param_number(clause)
                if limit_number is not None:
                    found.append(Binding(limit_number, operator))
    return found


_STATS = """SELECT /* pglab diagnose */ (most_common_vals::text::text[])[1] AS common,
       histogram_bounds::text::text[] AS bounds
FROM pg_stats WHERE tablename = %s AND attname = %s AND schemaname = ANY(current_schemas(false)) LIMIT 1"""
_PARTIAL = """SELECT /* pglab diagnose */ pg_get_expr(i.indpred, i.indrelid) AS predicate
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relname = %s AND i.indpred IS NOT NULL AND pg_table_is_visible(c.oid)"""


def _partial_constant(conn: psycopg.Connection[Any], table: str, column: str) -> str | None:
    with conn.cursor(row_factory=dict_row) as cursor:
        for row in cursor.execute(_PARTIAL, (table,)).fetchall():
            match = re.search(rf"\b{re.escape(column)}\)?\s*=\s*'((?:[^']|'')*)'", row["predicate"])
            if match:
                return match.group(1).replace("''", "'")
    return None


def _value(conn: psycopg.Connection[Any], binding: Binding, rows_per_call: float) -> tuple[str, str] | None:
    """(value as SQL text, where it came from) for one parameter, or None."""
    if binding.operator == "limit":
        return str(max(1, round(rows_per_call))), "rows per call in pg_stat_statements"
    if binding.operator == "offset":
        return "0", "unknown (no statistic records OFFSET values): 0 assumed"
    if binding.table is None or binding.column is None:
        return None
    where = f"{binding.table}.{binding.column}"
    with conn.cursor(row_factory=dict_row) as cursor:
        stats = cursor.execute(_STATS, (binding.table, binding.column)).fetchone()
    bounds = (stats or {}).get("bounds") or []
    if binding.operator in _EQUALITY:
        constant = _partial_constant(conn, binding.table, binding.column)
        if constant is not None:
            return constant, f"the constant a partial index on {binding.table} tests {binding.column} against"
        if stats and stats["common"] is not None:
            return stats["common"], f"most common value of {where} (pg_stats)"
        if bounds:
            return bounds[len(bounds) // 2], f"median of {where} (pg_stats histogram)"
        return None
    if bounds and binding.operator in _ABOVE + _BELOW:
        at = int(len(bounds) * 0.9) if binding.operator in _ABOVE else int(len(bounds) * 0.1)
        return bounds[min(at, len(bounds) - 1)], f"bound of {where} keeping a tenth of the rows (pg_stats histogram)"
    return None


def representative_values(conn: psycopg.Connection[Any], sql: str,
                          rows_per_call: float) -> dict[int, tuple[str, str]] | None:
    """$n -> (value, source) for every parameter of `sql`, or None when one has no value."""
    count = max((int(number) for number in _PARAM.findall(sql)), default=0)
    found = bindings(sql)
    if not count or found is None:
        return None
    values: dict[int, tuple[str, str]] = {}
    for binding in found:
        if binding.number not in values:
            value = _value(conn, binding, rows_per_call)
            if value is not None:
                text, source = value
                values[binding.number] = ("{" + _array_item(text) + "}" if binding.operator == "ANY" else text, source)
    return values if all(number in values for number in range(1, count + 1)) else None


def _array_item(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote(text: str) -> str:
    """A value as an untyped SQL string literal (coerced to the parameter's type by EXECUTE)."""
    return "'" + text.replace("'", "''") + "'"
