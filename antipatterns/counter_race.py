"""Read-modify-write counter (lost update)

## What it is

A counter is updated by reading it, changing it in application code and writing the result back:
`SELECT tokens_used FROM users WHERE id = $1`, then `UPDATE users SET tokens_used = $2` with the
new value computed in Python. It is correct one request at a time and silently wrong when two
requests for the same row overlap.

## Why it hurts

At the default READ COMMITTED level each statement sees the latest committed data, and a plain
`SELECT` takes no row lock. Two transactions both read 100; the first writes 150 (+50) and
commits; the second's `UPDATE` waits for the first's row lock, then re-checks its `WHERE` against
the new row version (EvalPlanQual) and writes its own constant, 130 (+30), computed from the
stale read. The +50 is gone: no error, no deadlock, nothing logged. Wrapping both statements in
one transaction does not help at this level. At REPEATABLE READ or SERIALIZABLE the second
`UPDATE` fails with `could not serialize access due to concurrent update` (40001) instead,
which is correct but needs a retry loop; `SELECT ... FOR UPDATE` serializes the writers but
holds the row lock across a client round trip. An expression such as `tokens_used =
tokens_used + $1` is evaluated against the row version the `UPDATE` finally locks, so
concurrent increments compose and none is lost.

## What you see under load

Nothing, in the metrics: latency is normal, error rate is zero, plans are fine. At most, short
row-lock waits on hot users (`wait_event_type = 'Lock'`, `wait_event = 'transactionid'`), which
the correct version has too. The only symptom is wrong data that grows with concurrency per
row: `users.tokens_used` smaller than the tokens actually recorded, so quotas and bills drift
low and nobody can say when it started.

## How pglab detects it

Static: a column value read by `SELECT`, changed in code, and written back by an `UPDATE` of the
same row that sets the column to a parameter (not `col = col + ...`), with no `FOR UPDATE` on the
read and no stricter isolation with retry. Runtime: not a statistic. `pg_stat_statements`,
`pg_stat_activity` and `pg_locks` count statements, rows, time and locks; a lost update is an
ordinary one-row `UPDATE` that succeeds, identical in all of them to a correct one, so no
threshold on any of them can reveal it. The runtime signal is the lost-update
invariant the lab checks over the load window: for every user, the sum of the per-message
tokens (`sum(messages.tokens)`) must equal the account total (`users.tokens_used`); any
shortfall is lost updates, reported as users affected and tokens missing.

## The fix

Let the database do the arithmetic in one statement: `UPDATE users SET tokens_used =
tokens_used + $1 WHERE id = $2`, with `RETURNING tokens_used` if the new value is needed. It takes
the row lock once, for one statement, and needs no retry. Use `SELECT ... FOR UPDATE` only when
the new value depends on logic that cannot be written in SQL, and keep that transaction short.

## Example

The lab's chat service runs exactly this code (`pglab lab run counter_race`); its SQL is the fix file's.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

## References

- https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED
- https://www.postgresql.org/docs/current/sql-update.html
- https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-ROWS
- https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html
"""

import ast

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.rewrite import node_span, splice

CODE = "PGL017"
CATEGORY = "transactions"
STATIC_SIGNAL = "value SELECTed, changed in code, written back by UPDATE of the same row"
RUNTIME_SIGNAL = "not a statistic: lost-update invariant (sum of message tokens = account total)"
FIX_HINT = "UPDATE ... SET col = col + $1 in one statement (RETURNING if the new value is needed)"
# No statistic can see a lost update, so the lab invariant that can stands in as the runtime detector.
RUNTIME_INVARIANT = "no_lost_updates"

# -- static rule ------------------------------------------------------------

FETCHES = frozenset({"fetchone", "fetchall", "fetchmany", "fetchrow", "fetchval", "scalar", "scalar_one", "one",
                     "first", "all", "mappings"})


def _names(node: ast.AST) -> set[str]:
    return {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}


def _targets(statement: ast.Assign | ast.AugAssign | ast.AnnAssign) -> set[str]:
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    return {name for target in targets for name in _names(target)}


def _read_values(select, update_line: int) -> set[str]:
    """Names that hold what `select` read: assigned from the call itself, or from a fetch on its
    cursor afterwards (psycopg's `cur.execute(...); value = cur.fetchone()[0]`)."""
    names: set[str] = set()
    receiver = select.receiver_name
    for node in ast.walk(select.function):
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        if not (select.node.lineno <= node.lineno < update_line):
            continue
        calls = [child for child in ast.walk(node.value) if isinstance(child, ast.Call)]
        if select.node in calls or any(isinstance(call.func, ast.Attribute) and call.func.attr in FETCHES
                                       and module_dotted(call.func.value) == receiver for call in calls):
            names |= _targets(node)
    return names


def module_dotted(node: ast.AST) -> str | None:
    from pglab.lab.check.extract import dotted

    return dotted(node) or None


def _tainted(select, update_line: int) -> set[str]:
    tainted = _read_values(select, update_line)
    statements = sorted((node for node in ast.walk(select.function)
                         if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value is not None
                         and select.node.lineno <= node.lineno < update_line), key=lambda node: node.lineno)
    for statement in statements:
        if statement.value is not None and _names(statement.value) & tainted:
            tainted |= _targets(statement)
    return tainted


QUERY_KINDS = frozenset({"UpdateStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    call = query.call
    if query.kind != "UpdateStmt" or call is None or call.function is None:
        return
    table = n.relation_name(query.body.get("relation", {}))
    assignments = []
    for target in query.body.get("targetList", []):
        body = n.unwrap(target)[1]
        value = body.get("val")
        number = n.param_number(value)
        if number is not None:
            assignments.append((body.get("name", ""), value, number))
    if not assignments:
        return
    line = call.node.lineno
    for select in call.module.calls_in(call.function):
        if select.node.lineno >= line or not any(
                other.kind == "SelectStmt" and not other.body.get("lockingClause")
                and table in n.range_tables(other.body.get("fromClause")).values() for other in select.queries):
            continue
        tainted = _tainted(select, line)
        for column, value, number in assignments:
            expression = call.param_expr(query, number)
            if expression is not None and _names(expression) & tainted:
                span = node_span(query, value)
                rewrite = (splice(query, [(span[0], span[1], f"{column} + ${number}")])
                           + f"  -- ${number} is now the change, not the new value") if span else None
                ctx.report(call.node, f"{table}.{column} is read, changed in Python and written back: two "
                                      "concurrent requests read the same value and one update is lost",
                           rewrite=rewrite, severity="error")
                return
