"""Where Python code creates connections and pools, and with which settings: shared by
pool_exhaustion, no_load_shedding and missing_timeouts."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from pglab.lab.check import flow
from pglab.lab.check.extract import PyModule, dotted

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


    @property
    def forwards_settings(self) -> bool:
        """The call spreads `**kwargs` it was given: its settings are the caller's, not visible here
        (a library's connector, a factory), so a rule about missing settings has no premise."""
        return any(keyword.arg is None for keyword in self.node.keywords)

    def null_pool(self, module: PyModule) -> bool:
        """SQLAlchemy `poolclass=NullPool` (also as the default of the enclosing function's
        parameter): a connection per checkout, no pool and so no wait queue."""
        value = self.keyword("poolclass")
        if isinstance(value, ast.Name):
            function = module.function_of(self.node)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = function.args
                positional = arguments.posonlyargs + arguments.args
                defaults = dict(zip([a.arg for a in positional[len(positional) - len(arguments.defaults):]],
                                    arguments.defaults, strict=True))
                defaults.update({a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
                                 if d is not None})
                value = defaults.get(value.id, value)
        return value is not None and dotted(value).rsplit(".", 1)[-1] in ("NullPool", "StaticPool")


def retry_loop(loop: ast.AST) -> bool:
    """A loop that ends once the body succeeds (`while True: try: connect(); break`): it creates
    one connection or pool per attempt, not one per item."""
    if isinstance(loop, ast.For | ast.AsyncFor):
        if not (isinstance(loop.iter, ast.Call) and flow.call_name(loop.iter) == "range"):
            return False
    elif not isinstance(loop, ast.While):
        return False
    return any(isinstance(node, ast.Break | ast.Return) for node in flow.body_nodes(loop.body))


def every_acquire_has_timeout(module: PyModule) -> bool:
    """The module acquires connections, and always with `acquire(timeout=...)`: a bounded wait."""
    acquires = [node for node in module.nodes if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute) and node.func.attr == "acquire"]
    return bool(acquires) and all(any(keyword.arg == "timeout" for keyword in node.keywords) for node in acquires)


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


def per_request(module, node: ast.AST, *, through_helpers: bool = True) -> ast.AST | None:
    """The request handler (a route-decorated function) `node` runs in, else None; also through
    one helper of the same module (`def get_db(): return psycopg.connect(...)` called by a route)."""
    function = module.function_of(node)
    while function is not None:
        if any(name.rsplit(".", 1)[-1] in ROUTE_DECORATORS for name in flow.decorators(function)):
            return function
        outer = module.function_of(function)
        if outer is None and through_helpers and isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for site in module.local_calls(function.name):
                handler = per_request(module, site, through_helpers=False)
                if handler is not None:
                    return handler
        function = outer
    return None


def constant_int(node: ast.AST | None) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return int(node.value)
    return None
