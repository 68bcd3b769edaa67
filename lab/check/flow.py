"""Python code-flow questions the rules share: is this call inside a loop, and over what? inside a
transaction or a held connection? is this a sleep, an HTTP call, a retry?

The answers are read from the shapes psycopg (sync and async), asyncpg and SQLAlchemy Core code
takes: `with conn.transaction()`, `async with pool.acquire() as conn`, `with engine.begin()`,
`conn = await asyncpg.connect(...)`, `for row in await conn.fetch(...)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from pglab.lab.check.extract import SQL_METHODS, DbCall, PyModule, dotted

LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
TRANSACTION_METHODS = frozenset({"transaction", "begin", "begin_nested"})
CONNECTION_METHODS = frozenset({"connection", "acquire", "connect", "getconn", "cursor"})
CONNECT_FUNCTIONS = frozenset({"connect", "acquire", "getconn"})
ROW_METHODS = SQL_METHODS | {"fetchall", "fetchmany", "fetchone", "all", "mappings", "cursor", "partitions",
                             "yield_per", "stream_scalars"}
SINGLE_ROW_METHODS = frozenset({"fetchone", "fetchrow", "fetchval", "scalar", "scalar_one", "scalar_one_or_none",
                                "one", "one_or_none", "first"})
RESULT_VIEWS = frozenset({"mappings", "scalars", "tuples"})
SLEEPS = frozenset({"time.sleep", "asyncio.sleep", "sleep", "trio.sleep", "gevent.sleep", "anyio.sleep"})
HTTP_MODULES = frozenset({"requests", "httpx", "aiohttp", "urllib", "urllib3", "http", "grpc", "boto3"})
HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "request", "send", "urlopen", "stream"})
HTTP_CLIENTS = ("client", "http", "session_http", "api")
STREAM_CALLS = frozenset({"send", "send_text", "send_json", "send_bytes", "write", "drain", "writelines", "flush",
                          "put"})


def call_name(node: ast.AST) -> str:
    """`a.b.c` of a call's function (through awaits), else ""."""
    if isinstance(node, ast.Await):
        node = node.value
    return dotted(node.func) if isinstance(node, ast.Call) else ""


def calls_local(node: ast.Call, name: str) -> bool:
    """`name(...)`, `self.name(...)` or `cls.name(...)`: a call of this module's own function or
    method, not of a same-named method on some other object (`mapping.get(...)`)."""
    func = node.func
    if isinstance(func, ast.Name):
        return func.id == name
    return isinstance(func, ast.Attribute) and func.attr == name and isinstance(func.value, ast.Name) \
        and func.value.id in ("self", "cls")


def loops_around(module: PyModule, node: ast.AST) -> list[ast.AST]:
    """Loops enclosing `node` inside its function, innermost first. A loop only counts when `node`
    is in its body (not in its iterable or its `else`)."""
    loops = []
    child = node
    for ancestor in module.ancestors(node):
        if isinstance(ancestor, FUNCTIONS + (ast.ClassDef,)):
            break
        in_body = child in ancestor.body if isinstance(ancestor, ast.For | ast.AsyncFor | ast.While) else (
            isinstance(ancestor, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp)
            and child is not ancestor.generators[0].iter)
        if in_body:
            loops.append(ancestor)
        child = ancestor
    return loops


def loop_iterable(loop: ast.AST) -> ast.expr | None:
    if isinstance(loop, ast.For | ast.AsyncFor):
        return loop.iter
    if isinstance(loop, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        return loop.generators[0].iter
    return None


def loop_names(loop: ast.AST) -> set[str]:
    """Names the loop binds on each iteration."""
    if isinstance(loop, ast.For | ast.AsyncFor):
        targets: list[ast.AST] = [loop.target]
    elif isinstance(loop, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        targets = [generator.target for generator in loop.generators]
    else:
        return set()
    return {node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)}


def derived_names(module: PyModule, loop: ast.AST) -> set[str]:
    """The loop's names plus names assigned from them inside the loop body (`key = row["id"]`)."""
    names = loop_names(loop)
    body = loop.body if isinstance(loop, ast.For | ast.AsyncFor | ast.While) else []
    for _ in range(2):
        for statement in body:
            for node in ast.walk(statement):
                if isinstance(node, ast.Assign) and _uses(node.value, names):
                    names |= {name.id for target in node.targets for name in ast.walk(target)
                              if isinstance(name, ast.Name)}
    return names


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(child, ast.Name) and child.id in names for child in ast.walk(node))


def is_constant_collection(node: ast.AST | None) -> bool:
    """A literal tuple/list/set of constants (or of tuples of them), or a name bound to one at
    module level: a fixed handful of items, not rows."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(isinstance(item, ast.Constant) or is_constant_collection(item) for item in node.elts)
    if isinstance(node, ast.Call) and call_name(node) in ("enumerate", "sorted", "reversed", "list", "tuple"):
        return bool(node.args) and is_constant_collection(node.args[0])
    return False


def constant_collection(module: PyModule, node: ast.AST | None) -> bool:
    if is_constant_collection(node):
        return True
    if isinstance(node, ast.Name):
        chain = module.resolver.value_of(node.id, node)
        return bool(chain) and all(is_constant_collection(value) for _, value, _ in chain)
    if isinstance(node, ast.Attribute):
        value = module.resolver.class_names.get(node.attr)
        return is_constant_collection(value)
    return False


def is_rows(module: PyModule, node: ast.AST | None, depth: int = 0) -> bool:
    """Whether `node` evaluates to rows of a query: a driver call, its fetch, or a name bound to one."""
    if node is None or depth > 3:
        return False
    if isinstance(node, ast.Await):
        return is_rows(module, node.value, depth + 1)
    if isinstance(node, ast.Call):
        if node in module.call_of:
            return True
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ROW_METHODS:
            return True
        if isinstance(func, ast.Name) and func.id in ("enumerate", "list", "sorted", "iter") and node.args:
            return is_rows(module, node.args[0], depth + 1)
        name = node.func.id if isinstance(node.func, ast.Name) else call_name(node).rsplit(".", 1)[-1]
        return calls_local(node, name) and _returns_rows(module, name, depth)
    if isinstance(node, ast.Name):
        if _bound_by_context(module, node, CONNECTION_METHODS):
            return True  # `with conn.cursor() as cur: ... for row in cur`
        return any(is_rows(module, value, depth + 1) for _, value, _ in module.resolver.value_of(node.id, node))
    return False


def _returns_rows(module: PyModule, name: str, depth: int) -> bool:
    """A function of this module (`def authors(conn): return conn.execute(...).fetchall()`) whose
    return value is rows: calling it in a loop header iterates rows."""
    for function in module.functions_named(name)[:1]:
        returned = [node.value for node in body_nodes(function.body) if isinstance(node, ast.Return)]
        return any(is_rows(module, value, depth + 1) for value in returned if value is not None)
    return False


def context_kind(expression: ast.expr) -> str | None:
    """"transaction", "connection" or None for the expression of a `with` item."""
    if isinstance(expression, ast.Await):
        expression = expression.value
    if not isinstance(expression, ast.Call):
        return None
    name = call_name(expression)
    last = name.rsplit(".", 1)[-1]
    if last in TRANSACTION_METHODS:
        return "transaction"
    if last in CONNECTION_METHODS or last in ("Session", "AsyncSession") or name.endswith("sessionmaker"):
        return "connection"
    return None


def database_contexts(module: PyModule, node: ast.AST) -> Iterator[tuple[ast.With | ast.AsyncWith, ast.withitem, str]]:
    """The `with` items around `node` (inside its function) that open a transaction or hold a
    connection, innermost first."""
    child = node
    for ancestor in module.ancestors(node):
        if isinstance(ancestor, FUNCTIONS):
            return
        if isinstance(ancestor, ast.With | ast.AsyncWith) and child in ancestor.body:
            for item in ancestor.items:
                kind = context_kind(item.context_expr)
                if kind:
                    yield ancestor, item, kind
        child = ancestor


def _bound_by_context(module: PyModule, name: ast.Name, methods: frozenset[str]) -> bool:
    for ancestor in module.ancestors(name):
        if isinstance(ancestor, FUNCTIONS):
            return False
        if isinstance(ancestor, ast.With | ast.AsyncWith):
            for item in ancestor.items:
                target = item.optional_vars
                if isinstance(target, ast.Name) and target.id == name.id:
                    return call_name(item.context_expr).rsplit(".", 1)[-1] in methods
    return False


def is_sleep(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and call_name(node) in SLEEPS


def is_http(node: ast.AST) -> bool:
    """An outbound HTTP (or RPC) call: `requests.get`, `httpx.AsyncClient().post`, `client.get`."""
    if not isinstance(node, ast.Call):
        return False
    name = call_name(node)
    parts = name.split(".")
    if not parts or parts[-1] not in HTTP_VERBS:
        return False
    if parts[0] in HTTP_MODULES or parts[-1] == "urlopen":
        return True
    receiver = parts[-2].lower() if len(parts) > 1 else ""
    return any(hint in receiver for hint in HTTP_CLIENTS)


def is_stream_write(node: ast.AST) -> bool:
    """Writing to a client (websocket, response stream, queue) rather than to the database."""
    if not isinstance(node, ast.Call):
        return False
    parts = call_name(node).split(".")
    if len(parts) < 2 or parts[-1] not in STREAM_CALLS:
        return False
    receiver = parts[-2].lower()
    return any(hint in receiver for hint in ("websocket", "ws", "response", "resp", "stream", "writer", "queue",
                                             "send", "channel", "socket"))


def body_nodes(statements: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node under `statements`, not entering nested functions or classes."""
    stack: list[ast.AST] = list(reversed(statements))
    while stack:
        node = stack.pop()
        yield node
        for child in reversed(list(ast.iter_child_nodes(node))):
            if not isinstance(child, FUNCTIONS + (ast.ClassDef,)):
                stack.append(child)


def single_row(call: DbCall) -> bool:
    """The call fetches at most one row: `fetchrow`, `fetchval`, `.fetchone()`, `.scalar_one()`,
    `.mappings().first()`, or a result (or the cursor that ran it) read only by one-row fetches
    later in the same function (`result = conn.execute(...); row = result.fetchone()`)."""
    if call.method in SINGLE_ROW_METHODS:
        return True
    module = call.module
    node: ast.AST = call.node
    parent = module.parents.get(node)
    while isinstance(parent, ast.Await) or (isinstance(parent, ast.Attribute) and parent.attr in RESULT_VIEWS):
        if isinstance(parent, ast.Attribute):  # `.mappings()` / `.scalars()`: step over the view's call
            node = module.parents.get(parent, parent)
        else:
            node = parent
        parent = module.parents.get(node)
    if isinstance(parent, ast.Attribute):
        return parent.attr in SINGLE_ROW_METHODS
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0], ast.Name):
        return _read_one_row(module, call, parent.targets[0].id)
    if isinstance(parent, ast.Expr):
        receiver = call.receiver_name
        return receiver is not None and "." not in receiver and _read_one_row(module, call, receiver)
    return False


def _read_one_row(module: PyModule, call: DbCall, name: str) -> bool:
    """Every later use of `name` in the function (until it is rebound or runs its next statement)
    is a one-row fetch."""
    function = module.function_of(call.node)
    if function is None:
        return False
    after = (call.node.lineno, call.node.col_offset)
    uses = sorted((node for node in ast.walk(function) if isinstance(node, ast.Name) and node.id == name
                   and (node.lineno, node.col_offset) > after), key=lambda node: (node.lineno, node.col_offset))
    fetches = []
    for use in uses:
        if isinstance(use.ctx, ast.Store):
            break  # the name is rebound: later uses read something else
        chain = module.parents.get(use)
        if isinstance(chain, ast.Attribute) and chain.attr in SQL_METHODS:
            break  # the cursor runs its next statement: later fetches read that one
        while isinstance(chain, ast.Attribute) and chain.attr in RESULT_VIEWS:
            call_node = module.parents.get(chain)
            chain = module.parents.get(call_node) if call_node is not None else None
        fetches.append(isinstance(chain, ast.Attribute) and chain.attr in SINGLE_ROW_METHODS)
    return bool(fetches) and all(fetches)


def decorators(function: ast.AST | None) -> list[str]:
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return []
    return [dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
            for decorator in function.decorator_list]


def enclosing_class(module: PyModule, node: ast.AST) -> ast.ClassDef | None:
    for ancestor in module.ancestors(node):
        if isinstance(ancestor, ast.ClassDef):
            return ancestor
    return None


def held_names(module: PyModule, node: ast.AST, outside: ast.AST) -> set[str]:
    """Names of connections held across `outside` (a loop) at `node`: `with ... as conn` items
    enclosing the loop, names assigned from connect()/acquire()/getconn() before it, and the
    enclosing function's parameters that are connections or cursors."""
    names: set[str] = set()
    for _, item, _kind in database_contexts(module, outside):
        if isinstance(item.optional_vars, ast.Name):
            names.add(item.optional_vars.id)
    function = module.function_of(node)
    if function is None:
        return names
    for child in ast.walk(function):
        if isinstance(child, ast.Assign) and getattr(child, "lineno", 0) < getattr(outside, "lineno", 0):
            value = child.value.value if isinstance(child.value, ast.Await) else child.value
            if isinstance(value, ast.Call) and call_name(value).rsplit(".", 1)[-1] in CONNECT_FUNCTIONS | {"cursor"}:
                names |= {target.id for target in child.targets if isinstance(target, ast.Name)}
    if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        for argument in function.args.args + function.args.kwonlyargs:
            lowered = argument.arg.lower()
            if any(hint in lowered for hint in ("conn", "cur", "cursor", "session", "connection")) and \
                    "pool" not in lowered:
                names.add(argument.arg)
    return names
