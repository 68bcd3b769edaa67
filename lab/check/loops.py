"""The loop question shared by n_plus_one, fanout_loop and per_row_update: is this statement run
once per item of a loop, with a parameter taken from the item?"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from pglab.lab.check import flow
from pglab.lab.check.extract import DbCall, Query


@dataclass
class PerItem:
    loop: ast.AST
    over_rows: bool  # the loop iterates over the rows of another query
    numbers: set[int]  # the statement's $n whose value comes from the loop item


def per_item(query: Query, *, while_loops: bool = False) -> PerItem | None:
    """The innermost loop that runs `query` once per item, parameterised by the item; loops over a
    literal handful of constants (a tuple of DDL, of seed rows) do not count."""
    call = query.call
    if call is None or call.method in ("executemany", "copy"):
        return None
    for loop in flow.loops_around(call.module, call.node):
        if isinstance(loop, ast.While) and not while_loops:
            continue
        iterable = flow.loop_iterable(loop)
        if flow.constant_collection(call.module, iterable):
            return None
        names = flow.derived_names(call.module, loop)
        numbers = _numbers_from(call, query, names)
        if numbers or (names & call.argument_names()):
            return PerItem(loop, flow.is_rows(call.module, iterable), numbers)
    return None


def _numbers_from(call: DbCall, query: Query, names: set[str]) -> set[int]:
    numbers = set()
    for number in query.params:
        expression = call.param_expr(query, number)
        if expression is not None and any(isinstance(node, ast.Name) and node.id in names
                                          for node in ast.walk(expression)):
            numbers.add(number)
    return numbers



def callers(query: Query) -> list[ast.Call]:
    """Calls, in the same module, of the function that runs `query` (`load_posts(conn, author.id)`,
    `self.load_posts(...)`; not `other.load_posts(...)`, which may be anything): where a helper's
    statement really runs."""
    call = query.call
    function = call.function if call is not None else None
    if call is None or not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return []
    return [node for node in call.module.local_calls(function.name) if node is not call.node]


def per_item_through_helper(query: Query) -> tuple[ast.Call, PerItem] | None:
    """A loop that calls the helper running `query`, passing something taken from the loop item
    (`for author in authors: load_posts(conn, author.id)`): the statement runs once per item."""
    call = query.call
    if call is None or call.method in ("executemany", "copy"):
        return None
    function = call.function
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) \
            or not _parameterised_by_arguments(call, query, function):
        return None
    for site in callers(query):
        for loop in flow.loops_around(call.module, site):
            if isinstance(loop, ast.While):
                continue
            iterable = flow.loop_iterable(loop)
            if flow.constant_collection(call.module, iterable):
                break
            names = flow.derived_names(call.module, loop)
            passed = {node.id for argument in [*site.args, *(keyword.value for keyword in site.keywords)]
                      for node in ast.walk(argument) if isinstance(node, ast.Name)}
            if names & passed:
                return site, PerItem(loop, flow.is_rows(call.module, iterable), set())
    return None


def _parameterised_by_arguments(call: DbCall, query: Query, function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The statement's parameters come from the helper's own arguments (not constants)."""
    arguments = {argument.arg for argument in [*function.args.args, *function.args.kwonlyargs]}
    return bool(call.argument_names() & arguments) and bool(query.params)
