"""Where Python code creates connections and pools, and with which settings: shared by
pool_exhaustion, no_load_shedding and missing_timeouts."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from pglab.lab.check import flow
from pglab.lab.check.extract import PyModule

CONNECT_CALLS = frozenset({"psycopg.connect", "psycopg2.connect", "asyncpg.connect", "psycopg.Connection.connect",
                           "psycopg.AsyncConnection.connect", "AsyncConnection.connect", "Connection.connect",
                           "pg8000.connect"})
POOL_CALLS = {
    "ConnectionPool": "psycopg_pool", "AsyncConnectionPool": "psycopg_pool", "NullConnectionPool": "psycopg_pool",
    "AsyncNullConnectionPool": "psycopg_pool", "create_pool": "asyncpg", "create_engine": "sqlalchemy",
    "create_async_engine": "sqlalchemy", "SimpleConnectionPool": "psycopg2", "ThreadedConnectionPool": "psycopg2",
}
ROUTE_DECORATORS = frozenset({"get", "post", "put", "patch", "delete", "route", "api_route", "websocket", "head",
                              "options", "view_config", "api_view", "action"})


@dataclass
class Creation:
    node: ast.Call
    name: str  # the dotted name called
    kind: str  # "connect" or "pool"
    library: str

    def keyword(self, name: str) -> ast.expr | None:
        return next((keyword.value for keyword in self.node.keywords if keyword.arg == name), None)

    def mentions(self, word: str, module: PyModule) -> bool:
        """`word` appears in any string or keyword name among the call's arguments (options, DSN,
        server_settings, connect_args...), following names to their assigned values and calls to
        the module's own functions (`kwargs=self._connect_options()`), one level deep."""
        roots: list[ast.AST] = [*self.node.args, *self.node.keywords]
        seen: list[ast.AST] = []
        for root in roots:
            seen.append(root)
            for child in ast.walk(root):
                if isinstance(child, ast.Name):
                    seen += [value for _, value, _ in module.resolver.value_of(child.id, child)]
                elif isinstance(child, ast.Call):
                    name = flow.call_name(child).rsplit(".", 1)[-1]
                    seen += [node for node in module.nodes
                             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name]
        return any(_says(node, word) for node in seen)


def _says(root: ast.AST, word: str) -> bool:
    for child in ast.walk(root):
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and word in child.value:
            return True
        if isinstance(child, ast.keyword) and child.arg == word:
            return True
    return False


def creation(node: ast.Call) -> Creation | None:
    name = flow.call_name(node)
    last = name.rsplit(".", 1)[-1]
    if name in CONNECT_CALLS or (last == "connect" and name.split(".")[0] in ("psycopg", "psycopg2", "asyncpg")):
        return Creation(node, name, "connect", name.split(".")[0])
    if last in POOL_CALLS and (last != "create_pool" or name.startswith("asyncpg")):
        return Creation(node, name, "pool", POOL_CALLS[last])
    return None


def per_request(module, node: ast.AST) -> ast.AST | None:
    """The request handler (a route-decorated function) `node` runs in, else None."""
    function = module.function_of(node)
    while function is not None:
        if any(name.rsplit(".", 1)[-1] in ROUTE_DECORATORS for name in flow.decorators(function)):
            return function
        function = module.function_of(function)
    return None


def constant_int(node: ast.AST | None) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return int(node.value)
    return None
