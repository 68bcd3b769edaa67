"""The SQL that a user's SQL or PL/pgSQL function runs, so that `sideeffects` can judge it like a statement.

A SQL function's body is SQL: its statements (or, for a `BEGIN ATOMIC` body, the whole definition)
are parsed as they are. A PL/pgSQL body is parsed with pglast's PL/pgSQL parser, and every
expression and statement in it becomes a SELECT or statement to judge. What it builds at run time
(`EXECUTE`, `FOR ... IN EXECUTE`, `OPEN ... FOR EXECUTE`, `RETURN QUERY EXECUTE`) cannot be known
from the text, so such a function is a `problem`, whatever the strings look like.

The PL/pgSQL parser does not know the database's types: it reads a variable of a type it does not
know (a domain, an enum) as a record and drops its initial value from its output. So the body is
also scanned token by token, and every name written before a parenthesis is returned in `names`,
for the caller to judge whichever of them are functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pglast import parse_plpgsql
from pglast.parser import ParseError, scan

# PL/pgSQL expressions carry the mode the server parses them in (RawParseMode).
_WHOLE_STATEMENT = 0  # the others are an expression (2) or an assignment (3 to 5)
_ASSIGNMENTS = (3, 4, 5)
_DYNAMIC_STATEMENTS = ("PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors")
_DYNAMIC = "builds SQL at run time (EXECUTE), so what it runs cannot be checked"


@dataclass(frozen=True)
class Body:
    """What one function runs: SQL `texts` to judge like a statement, `names` that may be functions
    it calls, or the `problem` that makes what it runs unknowable."""

    texts: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    problem: str = ""


def read_body(language: str, source: str, definition: str, defaults: str | None) -> Body:
    """The body of a function in `language` ("sql" or "plpgsql"): `source` is `pg_proc.prosrc`,
    `definition` its `pg_get_functiondef`, `defaults` its deparsed argument defaults (they are
    evaluated where it is called)."""
    extra = [f"SELECT {defaults}"] if defaults else []
    if language == "sql":
        return Body(texts=[source if source.strip() else definition, *extra])
    texts: list[str] = []
    try:
        parsed = parse_plpgsql(definition)
        if any(_is_dynamic(item) for item in _dicts(parsed)):
            return Body(problem=_DYNAMIC)
        for item in _dicts(parsed):
            expression = item.get("PLpgSQL_expr")
            if isinstance(expression, dict):
                texts.extend(_statements(str(expression.get("query", "")), int(expression.get("parseMode", 0))))
        names = _called_names(source)
        unchecked = _unchecked_variable(parsed, source)
        if unchecked:
            return Body(problem=unchecked)
    except ParseError as error:
        return Body(problem=f"has a body pglab could not parse ({error})")
    return Body(texts=texts + extra, names=names)


def _unchecked_variable(parsed: Any, source: str) -> str:
    """A declared variable of a type the PL/pgSQL parser did not know (it reads a domain, an enum or a
    row type as a record): assigning to a domain runs its CHECK, which may call any function, and
    the body does not say which. Only `record` itself is known to check nothing."""
    for item in _dicts(parsed):
        variable = item.get("PLpgSQL_rec")
        if not isinstance(variable, dict) or "lineno" not in variable:
            continue  # a record the function did not declare (a loop's, a trigger's NEW and OLD)
        name = str(variable.get("refname", ""))
        declared = re.search(rf"\b{re.escape(name)}\s+([A-Za-z_][\w.\"%]*)", source, re.IGNORECASE)
        type_name = declared.group(1) if declared else "?"
        if type_name.lower() != "record":
            return (f"declares {name} of type {type_name}, which pglab cannot check (a domain's CHECK"
                    " runs on every assignment and may call any function)")
    return ""


def _dicts(tree: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in the PL/pgSQL parser's output, iteratively."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _is_dynamic(item: dict[str, Any]) -> bool:
    return "dynquery" in item or any(name in item for name in _DYNAMIC_STATEMENTS)


def _statements(query: str, mode: int) -> list[str]:
    """A PL/pgSQL expression as statements the SQL parser reads: an expression becomes a SELECT, and
    an assignment a SELECT of its value and one of its target (whose subscripts are evaluated too)."""
    if mode in _ASSIGNMENTS:
        depth = 0
        for token in scan(query):
            depth += {"ASCII_91": 1, "ASCII_40": 1, "ASCII_93": -1, "ASCII_41": -1}.get(token.name, 0)
            if depth == 0 and token.name in ("COLON_EQUALS", "ASCII_61"):
                return [f"SELECT {query[:token.start]}", f"SELECT {query[token.end + 1:]}"]
        return [f"SELECT {query}"]  # not an assignment after all: parsed (or refused) as an expression
    return [query] if mode == _WHOLE_STATEMENT else [f"SELECT {query}"]


def _called_names(source: str) -> list[str]:
    """Every name written just before "(" in `source`, as the server folds it (a quoted name keeps
    its case)."""
    tokens = scan(source)
    names = []
    for token, following in zip(tokens, tokens[1:], strict=False):
        word = source[token.start:token.end + 1]
        if following.name == "ASCII_40" and (token.name == "IDENT" or token.kind != "NO_KEYWORD"):
            names.append(word[1:-1].replace('""', '"') if word.startswith('"') else word.lower())
    return sorted(set(names))
