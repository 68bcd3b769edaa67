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

