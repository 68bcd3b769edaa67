"""Rules and the one walk that feeds them.

A rule is the set of `check_*` functions in its catalogue module (`antipatterns/<id>.py`); the
function's name says what it wants, so nothing is registered anywhere:

- `check_sql_<NodeType>(node, ctx)`: every libpg_query node of that type (`check_sql_SelectStmt`,
  `check_sql_A_Expr`, ...), in every statement; `ctx.query` is the statement;
- `check_query(query, ctx)`: every statement once, with its Python call (`query.call`) if any;
  a module that names the statement types its hook reads in `QUERY_KINDS` gets only those, and
  one that names a `QUERY_GATE` (a test of the printed tree, as below) only statements that pass;
- `check_py_<AstType>(node, ctx)`: every Python node of that type (`check_py_Call`, `check_py_With`);
- `check_schema(schema, ctx)`: once per run, after the schema model is complete.

A module may also name, in `SQL_GATES`, a test of a statement's printed tree (libpg_query's
JSON text) for some of its `check_sql_<NodeType>` hooks: on a statement that fails the test the
hook would do nothing (`ilike_scan` with no LIKE operator anywhere in the statement), so it is
not called there, and the walk does not go looking for its nodes.

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
Gate = Callable[[str], bool]  # a statement's printed tree -> whether a hook can find anything in it


@dataclass
class Rule:
    entry: Entry
    sql: dict[str, SqlHook] = field(default_factory=dict)
    py: dict[str, PyHook] = field(default_factory=dict)
    query: QueryHook | None = None
    schema: SchemaHook | None = None
    gates: dict[str, Gate] = field(default_factory=dict)  # node type -> the module's SQL_GATES test
    query_kinds: frozenset[str] | None = None  # the module's QUERY_KINDS: None is every statement
    query_gate: Gate | None = None  # the module's QUERY_GATE: None is every statement of those kinds

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
        rule.gates = dict(getattr(entry.module, "SQL_GATES", {}))
        rule.query_gate = getattr(entry.module, "QUERY_GATE", None)
        kinds = getattr(entry.module, "QUERY_KINDS", None)
        rule.query_kinds = frozenset(kinds) if kinds is not None else None
        if kinds is not None and not all(isinstance(getattr(pg, kind, None), type) for kind in kinds):
            raise UserError(f"antipatterns/{entry_id}.py: QUERY_KINDS names something that is not a SQL node type")
        if set(rule.gates) - set(rule.sql):
            raise UserError(f"antipatterns/{entry_id}.py: SQL_GATES names node types it has no check_sql_ hook for: "
                            f"{', '.join(sorted(set(rule.gates) - set(rule.sql)))}")
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


SqlHooks = dict[str, list[tuple[Rule, SqlHook]]]
Plan = tuple[SqlHooks, list[str], list[tuple[Rule, QueryHook]]]  # see `Dispatch.plan`


@dataclass
class Dispatch:
    """Node type -> the (rule, hook) pairs that asked for it."""

    sql: SqlHooks = field(default_factory=dict)
    py: dict[str, list[tuple[Rule, PyHook]]] = field(default_factory=dict)
    query: list[tuple[Rule, QueryHook]] = field(default_factory=list)
    gates: list[tuple[Rule, str, Gate]] = field(default_factory=list)
    # every distinct gate function (SQL_GATES and QUERY_GATE), each asked once per statement
    tests: list[Gate] = field(default_factory=list)
    # which gates are open -> the SQL hooks to call and the texts that count their nodes
    _chosen: dict[tuple[bool, ...], tuple[SqlHooks, list[str]]] = field(default_factory=dict, repr=False)
    _by_kind: dict[str, list[tuple[Rule, QueryHook]]] = field(default_factory=dict, repr=False)
    _plans: dict[tuple[str, tuple[bool, ...]], Plan] = field(default_factory=dict, repr=False)

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
            dispatch.gates += [(rule, node_type, gate) for node_type, gate in rule.gates.items()]
        gates = [gate for _, _, gate in dispatch.gates] + [rule.query_gate for rule in rules if rule.query_gate]
        dispatch.tests = list({id(gate): gate for gate in gates}.values())
        return dispatch

    def query_for(self, kind: str) -> list[tuple[Rule, QueryHook]]:
        """The `check_query` hooks of the rules that read statements of this type (worked out
        once per type: ten rules asked of every one of tens of thousands of statements add up)."""
        hooks = self._by_kind.get(kind)
        if hooks is None:
            hooks = self._by_kind[kind] = [(rule, hook) for rule, hook in self.query
                                           if rule.query_kinds is None or kind in rule.query_kinds]
        return hooks

    def plan(self, kind: str, text: str) -> Plan:
        """What to do with a statement of type `kind` whose printed tree is `text`: the SQL hooks
        to walk it for and the texts that count their nodes, and the `check_query`
        hooks whose kinds and gates let it through (`query_for`, `QUERY_GATE`).

        Several rules share a gate (four ask `reads_a_table`): each distinct gate is asked once
        here, and the answer for a type and a set of open gates is worked out once per run."""
        opened = tuple([test(text) for test in self.tests])
        plan = self._plans.get((kind, opened))
        if plan is None:
            answers = {id(test): answer for test, answer in zip(self.tests, opened, strict=True)}
            hooks, wanted = self._sql_hooks(tuple(answers[id(gate)] for _, _, gate in self.gates))
            queries = [(rule, hook) for rule, hook in self.query_for(kind)
                       if rule.query_gate is None or answers[id(rule.query_gate)]]
            plan = self._plans[(kind, opened)] = (hooks, wanted, queries)
        return plan

    def _sql_hooks(self, key: tuple[bool, ...]) -> tuple[SqlHooks, list[str]]:
        """The SQL hooks worth calling on a statement whose gates answered `key` (those whose gate
        it passes, and the ungated), and the texts (`"NodeType":`) that count their nodes in it. A
        handful of gates make a handful of combinations: each is worked out once."""
        chosen = self._chosen.get(key)
        if chosen is None:
            closed = {(id(rule), node_type) for (rule, node_type, _), open_ in zip(self.gates, key, strict=True)
                      if not open_}
            hooks: SqlHooks = {}
            for node_type, pairs in self.sql.items():
                kept = [(rule, hook) for rule, hook in pairs if (id(rule), node_type) not in closed]
                if kept:
                    hooks[node_type] = kept
            chosen = self._chosen[key] = (hooks, [f'"{node_type}":' for node_type in hooks])
        return chosen


# Nodes that hold no expression: their insides (names, constants) are never walked into.
LEAVES = frozenset({"String", "Integer", "Float", "Boolean", "BitString", "A_Const", "A_Star", "ParamRef",
                    "ColumnRef", "TypeName", "RangeVar", "Alias", "typeName", "relation", "alias"})


def walk_sql(statement: dict[str, Any], hooks: SqlHooks, context: Context, budget: int | None = None) -> None:
    """Visit every node of one statement tree (iteratively: nesting depth is unbounded) and hand
    each node whose type some rule asked for to that rule's hook, with `context.rule` set.

    This loop runs for every node of every statement, so it is kept bare: no per-node function
    call unless a rule wants the node, and no descent into nodes that cannot contain another
    expression (names, constants, column references).

    `budget`, when given, is an upper bound on the wanted nodes in the tree (how often their
    types occur in its printed text): once that many were handed out, nothing wanted is left
    and the walk stops. A simple SELECT whose only wanted node is itself ends at its root."""
    stack: list[Any] = [statement]
    pop, push, extend = stack.pop, stack.append, stack.extend
    left = -1 if budget is None else budget
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
                    left -= 1
                    if left == 0:
                        return
                if key not in LEAVES:
                    push(value)
            elif kind is list:
                extend(value)
