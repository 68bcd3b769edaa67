"""Mechanical rewrites shown with findings: the SQL the fix amounts to, produced from the parsed
statement rather than from a template, so it keeps the user's own tables, aliases and parameters.

Every rewrite is a splice of the statement's own text at the locations libpg_query reports, so
the user's spelling, aliases and comments survive. (Going through sqlglot for NOT IN -> NOT EXISTS
cost about a millisecond per statement, more than checking the statement; splicing costs
microseconds.)
"""

from __future__ import annotations

from typing import Any

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.extract import Query


def splice(query: Query, edits: list[tuple[int, int, str]]) -> str:
    """The statement with `(start, end, replacement)` edits applied (offsets into `query.sql`)."""
    text = query.sql
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text.strip()


def node_span(query: Query, node: Any) -> tuple[int, int] | None:
    """Character span of a parameter or a plain column reference in `query.sql`."""
    location = n.location(node)
    if location is None:
        return None
    start = query.text_at(location)
    kind, body = n.unwrap(node)
    if kind == "ParamRef":
        return start, start + 1 + len(str(body.get("number", "")))
    reference = n.column(node)
    if reference is not None:
        text = ".".join(part for part in reference if part)
        if query.sql[start : start + len(text)].lower() == text.lower():
            return start, start + len(text)
    return None


def closing_paren(text: str, start: int) -> int | None:
    """Offset just past the parenthesis that closes the one at `start` (quotes respected)."""
    depth = 0
    index = start
    quote = ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None


def any_rewrite(query: Query, numbers: set[int]) -> str | None:
    """`col = $n` -> `col = ANY($n)` for the parameters in `numbers`: one statement for a whole batch."""
    edits = []
    for kind, body in n.walk({query.kind: query.body}):
        if kind != "A_Expr" or body.get("kind") != "AEXPR_OP" or n.operator(body) != "=":
            continue
        for side in (body.get("lexpr"), body.get("rexpr")):
            number = n.param_number(side)
            span = node_span(query, side) if number in numbers and n.unwrap(side)[0] == "ParamRef" else None
            if span:
                edits.append((span[0], span[1], f"ANY(${number})"))
    return splice(query, edits) if edits else None


def not_exists(query: Query, boolexpr: dict[str, Any], sublink: dict[str, Any]) -> str | None:
    """`x NOT IN (SELECT col FROM t WHERE c)` -> `NOT EXISTS (SELECT 1 FROM t WHERE t.col = x AND (c))`,
    spliced from the statement's own text at libpg_query's locations (cheap enough to run on every
    finding). Subqueries with GROUP BY, ORDER BY, LIMIT or set operations are left alone."""
    sub = n.unwrap(sublink.get("subselect"))[1]
    if any(sub.get(key) for key in ("groupClause", "havingClause", "sortClause", "limitCount", "distinctClause",
                                    "withClause")) or sub.get("op", "SETOP_NONE") != "SETOP_NONE":
        return None
    targets = sub.get("targetList", [])
    sources = sub.get("fromClause", [])
    target = n.unwrap(targets[0])[1] if len(targets) == 1 else {}
    if not target or target.get("name") or not sources:
        return None
    sql, lowered = query.sql, query.sql.lower()
    outer_start = query.text_at(n.location(sublink.get("testexpr")))
    keyword = query.text_at(boolexpr.get("location"))
    opening = sql.find("(", keyword)
    closing = closing_paren(sql, opening) if opening >= 0 else None
    from_item = query.text_at(n.location(sources[0]))
    from_keyword = lowered.rfind("from", 0, from_item)
    if closing is None or from_keyword < opening:
        return None
    inner = _qualified(sql[query.text_at(n.location(target.get("val"))) : from_keyword].strip(), target.get("val"),
                       n.range_tables(sources))
    outer = _qualified(sql[outer_start:keyword].strip(), sublink.get("testexpr"),
                       n.range_tables(query.body.get("fromClause")))
    where = sub.get("whereClause")
    if where is None:
        body = f"SELECT 1 {sql[from_keyword : closing - 1].strip()} WHERE {inner} = {outer}"
    else:
        where_keyword = lowered.rfind("where", from_keyword, query.text_at(_first_location(where)))
        if where_keyword < 0:
            return None
        condition = sql[where_keyword + len("where") : closing - 1].strip()
        body = f"SELECT 1 {sql[from_keyword:where_keyword].strip()} WHERE {inner} = {outer} AND ({condition})"
    return splice(query, [(outer_start, closing, f"NOT EXISTS ({body})")])


def _first_location(node: Any) -> int | None:
    """The smallest location in a subtree: where an expression's text starts."""
    found = [body["location"] for _, body in n.walk(node) if isinstance(body.get("location"), int)
             and body["location"] >= 0]
    return min(found) if found else None


def _qualified(text: str, node: Any, tables: dict[str, str | None]) -> str:
    """Qualify a bare column with its query's only table, so the rewritten correlation cannot bind
    to a same-named column of the other query."""
    reference = n.column(node)
    if reference is None or reference[0] is not None or len(tables) != 1:
        return text
    return f"{next(iter(tables))}.{text}"
