"""NOT IN with a subquery

## What it is

An anti-match written as `WHERE x NOT IN (SELECT col FROM ...)`, e.g. "users who never posted"
or "conversations with no unread notification". It is two bugs in one: it cannot be planned
as an anti-join, so it can go quadratic, and it returns the wrong answer as soon as the subquery
yields a single NULL.

## Why it hurts

SQL's `NOT IN` is three-valued: `x NOT IN (list)` means `x <> ALL (list)`, and if `x` matches
nothing but the list contains a NULL, the result is NULL, not true, so `WHERE` drops the row.
One NULL in the subquery (an assistant message with `user_id` NULL, a system notification with
no `message_id`) makes the query return no rows at all; and since no row ever passes, a `LIMIT`
never fills, so the query reads every outer row, call after call, to return nothing. Because
of those semantics the planner cannot turn `NOT IN` into an anti-join, as it
does for `NOT EXISTS`; it runs the subquery as a SubPlan tested against every outer row. If
it estimates the subquery result fits in a hash table within `work_mem` (times
`hash_mem_multiplier`), it builds a "hashed SubPlan" once, which is tolerable. If not, it falls
back to a plain SubPlan: for each outer row it rescans the materialized subquery result until it
finds a match, and reads all of it for every outer row that has none: outer x inner comparisons.
The switch is silent and happens when the estimated inner result outgrows that memory: a cliff,
not a slope. On PostgreSQL 15, 100k users against 500k messages with the default 4MB
`work_mem`, the `NOT IN` ran for over ten minutes before it was cancelled; the `NOT EXISTS`
form, a Hash Anti Join, took about 0.1 s.

## What you see under load

Backends stuck `active`, mostly with no wait event (CPU-bound), in `pg_stat_activity`, and a
`mean_exec_time` in `pg_stat_statements` that jumps by orders of magnitude once the inner table
outgrows the hash limit. `EXPLAIN` shows `Filter: (NOT (SubPlan 1))` (from PostgreSQL 17:
`NOT (ANY (id = (SubPlan 1).col1))`) without the word `hashed`, over a `Materialize` node whose
loops equal the outer rows. Or, the other failure: the query is fast and returns zero rows, and
nobody notices until a report is empty.

## How pglab detects it

Static: any `NOT IN` whose right-hand side is a subquery (`NOT IN (SELECT ...)`), in SQL
strings and in Python-embedded SQL; a `NOT IN` over a literal list is not flagged. Runtime: a
plan with a non-hashed SubPlan under a `NOT` filter (loops close to the outer row count), also
for a statement still running that never completes (a statement timeout cancels it, so
`pg_stat_statements` never counts it: its session's text is planned), and, as a correctness
warning, a `NOT IN (SELECT ...)` statement that returned no row in any of its many calls
(`pg_stat_statements`), the mark of a NULL in the subquery.

## The fix

Write it as `NOT EXISTS` with a correlated condition. It means what was intended (NULLs in the
inner table are simply never equal), and the planner can choose a Hash, Merge or Nested Loop
Anti Join, using an index on the inner column when one exists. `LEFT JOIN ... WHERE inner.id IS
NULL` is equivalent and plans the same way. Do not "fix" `NOT IN` by adding `WHERE col IS NOT
NULL` to the subquery: it repairs the answer but not the plan.

## Example

### Naive

{fix:naive}

### Fixed

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/functions-subquery.html#FUNCTIONS-SUBQUERY-NOTIN
- https://www.postgresql.org/docs/current/functions-subquery.html#FUNCTIONS-SUBQUERY-EXISTS
- https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-WORK-MEM
- https://www.postgresql.org/docs/current/using-explain.html
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.rewrite import not_exists

CODE = "PGL010"
CATEGORY = "query-shape"
STATIC_SIGNAL = "NOT IN whose right-hand side is a subquery"
RUNTIME_SIGNAL = "non-hashed SubPlan under a NOT filter, loops ~ outer rows; a NOT IN that never returns a row"
FIX_HINT = "rewrite as NOT EXISTS (SELECT 1 FROM inner WHERE inner.col = outer.col)"

# -- static rule ------------------------------------------------------------

def _may_have_not_in(text: str) -> bool:
    """Whether a statement's printed tree can hold NOT (subquery): both NOT and a SubLink are there."""
    return '"NOT_EXPR"' in text and '"SubLink"' in text


SQL_GATES = {"BoolExpr": _may_have_not_in}  # the walk hands BoolExpr nodes only of statements that pass


def check_sql_BoolExpr(node: dict, ctx) -> None:
    if node.get("boolop") != "NOT_EXPR" or not ctx.query.has("SubLink"):
        return
    for argument in node.get("args", []):
        kind, body = n.unwrap(argument)
        if kind == "SubLink" and body.get("subLinkType") == "ANY_SUBLINK" and body.get("testexpr"):
            ctx.report(argument, "NOT IN (SELECT ...) runs as a per-row subplan unless it fits in work_mem, "
                                 "and returns no rows at all once the subquery yields a NULL",
                       rewrite=not_exists(ctx.query, node, body))
