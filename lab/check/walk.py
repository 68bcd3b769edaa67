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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pglab.lab.core.catalogue import Entry, find_entry

Hook = Callable[..., None]


@dataclass
class Rule:
    entry: Entry
    sql: dict[str, Hook] = field(default_factory=dict)
    py: dict[str, Hook] = field(default_factory=dict)
    query: Hook | None = None
    schema: Hook | None = None

    @property
    def has_hooks(self) -> bool:
        return bool(self.sql or self.py or self.query or self.schema)


def load_rules(ids: list[str]) -> list[Rule]:
    """The hooks of each selected catalogue entry, by the names of its module's functions."""
    rules = []
    for entry_id in ids:
        entry = find_entry(entry_id)
        rule = Rule(entry)
        for name in dir(entry.module):
            hook = getattr(entry.module, name)
            if not name.startswith("check_") or not callable(hook):
                continue
            if name.startswith("check_sql_"):
                rule.sql[name.removeprefix("check_sql_")] = hook
            elif name.startswith("check_py_"):
                rule.py[name.removeprefix("check_py_")] = hook
            elif name == "check_query":
                rule.query = hook
            elif name == "check_schema":
                rule.schema = hook
        rules.append(rule)
    return rules


@dataclass
class Dispatch:
    """Node type -> the (rule, hook) pairs that asked for it."""

    sql: dict[str, list[tuple[Rule, Hook]]] = field(default_factory=dict)
    py: dict[str, list[tuple[Rule, Hook]]] = field(default_factory=dict)
    query: list[tuple[Rule, Hook]] = field(default_factory=list)

    @classmethod
    def of(cls, rules: list[Rule]) -> Dispatch:
        dispatch = cls()
        for rule in rules:
            for kind, hook in rule.sql.items():
                dispatch.sql.setdefault(kind, []).append((rule, hook))
            for kind, hook in rule.py.items():
                dispatch.py.setdefault(kind, []).append((rule, hook))
            if rule.query:
                dispatch.query.append((rule, rule.query))
        return dispatch


# Nodes that hold no expression: their insides (names, constants) are never walked into.
LEAVES = frozenset({"String", "Integer", "Float", "Boolean", "BitString", "A_Const", "A_Star", "ParamRef",
                    "ColumnRef", "TypeName", "RangeVar", "Alias", "typeName", "relation", "alias"})


def walk_sql(statement: dict[str, Any], hooks: dict[str, list[tuple[Rule, Hook]]], context: Any) -> None:
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
