"""Rules and the one walk that feeds them.

A rule is the set of `check_*` functions in its catalogue module (`antipatterns/<id>.py`); the
function's name says what it wants, so nothing is registered anywhere:

- `check_sql_<NodeType>(node, ctx)`: every libpg_query node of that type (`check_sql_SelectStmt`,
  `check_sql_A_Expr`, ...), in every statement; `ctx.query` is the statement;
- `check_query(query, ctx)`: every statement once, with its Python call (`query.call`) if any;
- `check_py_<AstType>(node, ctx)`: every Python node of that type (`check_py_Call`, `check_py_With`);
- `check_schema(schema, ctx)`: once per run, after the schema model is complete.

Each statement's tree is walked once, and each node is handed to the rules that asked for its
type; Python trees likewise.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pglast import ast as pg

from pglab.lab.core.catalogue import Entry, find_entry
from pglab.lab.core.errors import UserError

if TYPE_CHECKING:  # filecheck imports this module: the hook types name its classes for mypy only
    from pglab.lab.check.extract import Query
    from pglab.lab.check.filecheck import Context
    from pglab.lab.check.schema import Schema

# Hooks by kind; the first argument differs, the second is always the engine's `Context`.
SqlHook = Callable[[dict[str, Any], "Context"], None]  # a libpg_query node's body
PyHook = Callable[[Any, "Context"], None]  # a Python node of the `ast` type the hook's name says
QueryHook = Callable[["Query", "Context"], None]  # an extracted statement
SchemaHook = Callable[["Schema", "Context"], None]  # the schema model, once complete
Hook = SqlHook | PyHook | QueryHook | SchemaHook


@dataclass
class Rule:
    entry: Entry
    sql: dict[str, SqlHook] = field(default_factory=dict)
    py: dict[str, PyHook] = field(default_factory=dict)
    query: QueryHook | None = None
    schema: SchemaHook | None = None

    @property
    def has_hooks(self) -> bool:
        return bool(self.sql or self.py or self.query or self.schema)


def load_rules(ids: list[str]) -> list[Rule]:
    """The hooks of each selected catalogue entry, by the names of its module's functions.

    A misspelt hook name would otherwise be a rule that silently never runs, so every public
    `check_*` function must name a real hook: a libpg_query node type, a Python AST type, or
    `check_query` / `check_schema`."""
    rules = []
    for entry_id in ids:
        entry = find_entry(entry_id)
        rule = Rule(entry)
        for name in dir(entry.module):
            hook = getattr(entry.module, name)
            if name.startswith("check_") and callable(hook):
                _attach(rule, name, hook)
        rules.append(rule)
    return rules


def _attach(rule: Rule, name: str, hook: Any) -> None:
    if name.startswith("check_sql_"):
        node_type = name.removeprefix("check_sql_")
        if not isinstance(getattr(pg, node_type, None), type):
            raise UserError(f"antipatterns/{rule.entry.id}.py: {name} names no SQL node type {node_type!r}")
        rule.sql[node_type] = hook
    elif name.startswith("check_py_"):
        node_type = name.removeprefix("check_py_")
        if not (isinstance(getattr(ast, node_type, None), type) and issubclass(getattr(ast, node_type), ast.AST)):
            raise UserError(f"antipatterns/{rule.entry.id}.py: {name} names no Python AST type {node_type!r}")
        rule.py[node_type] = hook
    elif name == "check_query":
        rule.query = hook
    elif name == "check_schema":
        rule.schema = hook
    else:
        raise UserError(f"antipatterns/{rule.entry.id}.py: {name} is not a rule hook (check_sql_<Node>, "
                        "check_py_<AstType>, check_query or check_schema)")


@dataclass
class Dispatch:
    """Node type -> the (rule, hook) pairs that asked for it."""

    sql: dict[str, list[tuple[Rule, SqlHook]]] = field(default_factory=dict)
    py: dict[str, list[tuple[Rule, PyHook]]] = field(default_factory=dict)
    query: list[tuple[Rule, QueryHook]] = field(default_factory=list)

    @classmethod
    def of(cls, rules: list[Rule]) -> Dispatch:
        dispatch = cls()
        for rule in rules:
            for node_type, sql_hook in rule.sql.items():
                dispatch.sql.setdefault(node_type, []).append((rule, sql_hook))
            for ast_type, py_hook in rule.py.items():
                dispatch.py.setdefault(ast_type, []).append((rule, py_hook))
            if rule.query:
                dispatch.query.append((rule, rule.query))
        return dispatch


# Nodes that hold no expression: their insides (names, constants) are never walked into.
LEAVES = frozenset({"String", "Integer", "Float", "Boolean", "BitString", "A_Const", "A_Star", "ParamRef",
                    "ColumnRef", "TypeName", "RangeVar", "Alias", "typeName", "relation", "alias"})


def walk_sql(statement: dict[str, Any], hooks: dict[str, list[tuple[Rule, SqlHook]]], context: Context) -> None:
    """Visit every node of one statement tree (iteratively: nesting depth is unbounded) and hand
    each node whose type some rule asked for to that rule's hook, with `context.rule` set.

    This loop runs for every node of every statement, so it is kept bare: no per-node function
    call unless a rule wants the node, and no descent into nodes that cannot contain another
    expression (names, constants, column references)."""
    stack: list[Any] = [statement]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        item = pop()
        if type(item) is not dict:
            continue
        for key, value in item.items():
            kind = type(value)
            if kind is dict:
                wanted = hooks.get(key)
                if wanted:
                    for rule, hook in wanted:
                        context.rule = rule
                        hook(value, context)
                if key not in LEAVES:
                    push(value)
            elif kind is list:
                extend(value)
