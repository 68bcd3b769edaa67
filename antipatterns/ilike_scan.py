"""Substring search with a leading-wildcard LIKE or ILIKE

## What it is

Search implemented as `body ILIKE '%' || $1 || '%'` (or `LIKE`, or a parameter the code builds as
`f"%{term}%"`). The pattern starts with a wildcard, so the match can begin anywhere in the value.
It works on a test table of a few hundred messages and becomes a full table scan per keystroke
once the table holds millions.

## Why it hurts

A B-tree keeps values in sorted order, so it can only narrow a `LIKE` whose pattern has a fixed
prefix (`'abc%'`, and then only with the C collation or a `text_pattern_ops` index). A leading
`%` gives no prefix and no range to descend to, so no B-tree can help: the planner's only path is
a sequential scan that runs the `~~` (`LIKE`) or `~~*` (`ILIKE`) operator on every row. `ILIKE`
also folds case on both sides for every comparison. Long bodies stored out of line in TOAST must
be fetched and decompressed for every row tested. The cost is proportional to the total size of
the table, whatever the number of matches, and a parallel seq scan only spreads that cost over
more cores.

## What you see under load

Search latency that grows with the table, and CPU saturation as soon as a few searches run at
once; every other query slows down as the scans evict its pages from shared buffers.
`EXPLAIN (ANALYZE, BUFFERS)` shows a `Seq Scan` (often under `Gather` as a `Parallel Seq Scan`)
with `Filter: (body ~~* '%term%'::text)` and a `Rows Removed by Filter` close to the table size.
`pg_stat_statements` shows shared blocks per call close to the table's page count, and
`seq_tup_read` in `pg_stat_user_tables` grows by the table size per search. Once the table
outgrows memory, `pg_stat_activity` shows `DataFileRead` IO waits.

## How pglab detects it

Static: a `LIKE`/`ILIKE` whose pattern starts with a wildcard: a literal `'%...'`, a
concatenation `'%' || $1`, or a parameter the code builds as `f"%{x}%"` or `"%" + x`.
Runtime: a `Seq Scan` whose Filter applies `~~*` or `~~` to a large table.

## The fix

To keep substring semantics, index trigrams: the `pg_trgm` extension's `gin_trgm_ops` operator
class lets a GIN index serve `LIKE` and `ILIKE` with wildcards anywhere, with no change to the
query. The plan becomes a `Bitmap Index Scan` on the trigram index feeding a `Bitmap Heap Scan`
that rechecks the candidate rows. Terms shorter than three characters give the index no trigram
to narrow by, so require a minimum length. If users search for words rather than substrings,
full-text search is the better tool: a GIN index on `to_tsvector('english', body)` queried with
`@@ websearch_to_tsquery('english', $1)` (stemmed words, ranking, but different matches). Either
GIN index makes writes costlier: measure insert latency after adding it.

## Example

### Naive

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/functions-matching.html#FUNCTIONS-LIKE
- https://www.postgresql.org/docs/current/pgtrgm.html
- https://www.postgresql.org/docs/current/textsearch-indexes.html
- https://www.postgresql.org/docs/current/indexes-opclass.html
- https://www.postgresql.org/docs/current/using-explain.html
"""

import ast

from pglab.lab.check import sqlnodes as n

CODE = "PGL003"
CATEGORY = "indexing"
STATIC_SIGNAL = "LIKE/ILIKE whose pattern starts with a wildcard ('%...', '%' || $1, or f\"%{x}%\")"
RUNTIME_SIGNAL = "Seq Scan with a ~~* or ~~ Filter on a large table"
FIX_HINT = "add a pg_trgm GIN index (gin_trgm_ops), or use full-text search on a GIN tsvector index"

# -- static rule ------------------------------------------------------------

LIKE_OPERATORS = frozenset({"~~", "~~*", "!~~", "!~~*"})


def _leading_wildcard(pattern: object, ctx) -> bool:
    value = n.constant(pattern)
    if isinstance(value, str):
        return value[:1] in ("%", "_")
    kind, body = n.unwrap(pattern)
    if kind == "A_Expr" and n.operator(body) == "||":
        return _leading_wildcard(body.get("lexpr"), ctx)
    number = n.param_number(pattern)
    call = ctx.query.call
    if number is None or call is None:
        return False
    expression = call.param_expr(ctx.query, number)
    if not isinstance(expression, ast.expr):
        return False
    text = call.module.resolver.resolve(expression)
    return text is not None and text.value[:1] in ("%", "_")


def _may_have_like(text: str) -> bool:
    """Whether a statement's printed tree can hold a LIKE: its kind or its operator is there."""
    return '"AEXPR_LIKE"' in text or '"AEXPR_ILIKE"' in text or "~~" in text


SQL_GATES = {"A_Expr": _may_have_like}  # the walk hands A_Expr nodes only of statements that pass


def check_sql_A_Expr(node: dict, ctx) -> None:
    if not _may_have_like(ctx.query.json):
        return
    if node.get("kind") not in ("AEXPR_LIKE", "AEXPR_ILIKE") and n.operator(node) not in LIKE_OPERATORS:
        return
    if _leading_wildcard(node.get("rexpr"), ctx):
        word = "ILIKE" if node.get("kind") == "AEXPR_ILIKE" or "*" in n.operator(node) else "LIKE"
        ctx.report(node, f"{word} pattern starts with a wildcard: no B-tree index can serve it, so every search "
                         "reads every row")
