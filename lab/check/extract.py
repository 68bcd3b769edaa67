"""From files to statements: every SQL statement in `.sql` files and every statement Python code
sends to a database, each with its file position and, for Python, the call that runs it.

A Python call counts as a database call when its method is one drivers use to run SQL
(psycopg and asyncpg `execute`/`fetch...`/`copy`, SQLAlchemy `execute`/`scalar(s)`/`exec_driver_sql`,
whatever the receiver: cursor, connection, pool or session) and its first argument reads as
SQL, possibly through `text()` or `psycopg.sql.SQL()`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pglab.lab.check import pyschema, sqlnodes
from pglab.lab.check.pyliteral import SourceFile, Text
from pglab.lab.check.pytext import Resolver
from pglab.lab.check.sqlforms import psql_blanked, tuple_adapted
from pglab.lab.check.sqltext import (
    FileLocator,
    Locator,
    OffsetLocator,
    Piece,
    SqlSyntaxError,
    byte_to_char,
    normalise,
    parse_document,
    split_statements,
    statement_trees,
)
from pglab.lab.core.report import Diagnostic

SQL_METHODS = frozenset({"execute", "executemany", "fetch", "fetchrow", "fetchval", "copy", "copy_expert",
                         "exec_driver_sql", "scalar", "scalars", "stream", "prepare", "executescript",
                         "execute_values", "execute_batch"})
_SQL_START = re.compile(
    r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*|\(\s*)*(?:SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|COPY|SET|"
    r"RESET|SHOW|BEGIN|START|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|LISTEN|UNLISTEN|NOTIFY|TRUNCATE|VALUES|EXPLAIN|"
    r"ANALYZE|VACUUM|GRANT|REVOKE|DO|CALL|LOCK|MERGE|REFRESH|REINDEX|CLUSTER|COMMENT|TABLE|PREPARE|DECLARE|"
    r"FETCH|MOVE|CLOSE|DISCARD)\b",
    re.I | re.S,
)
# A file with none of these words cannot contain anything a rule looks at.
PYTHON_TRIGGER = re.compile(
    r"execute|fetch|copy|text\(|SQL\(|connect|[Pp]ool|transaction|isolation|SERIALIZABLE|acquire|scalar|"
    r"create_table|create_index|add_column|drop_index|drop_column|drop_table|__tablename__|Table\(|mapped_column")


@dataclass(eq=False)
class Query:
    """One SQL statement, parsed, with where it came from."""

    path: str
    kind: str  # statement node type, e.g. "SelectStmt"
    json: str  # the parse tree as libpg_query printed it (shared by statements parsed together)
    index: int  # which statement of `json` this is
    sql: str  # the statement text pglast parsed (placeholders as $n)
    locator: Locator  # offsets in `sql` -> file position
    params: dict[int, Any] = field(default_factory=dict)  # $n -> where Python takes it from
    call: DbCall | None = None
    to_char: Callable[[int], int] = field(default=lambda offset: offset)
    # part of the text is a Python value pglab could not see, read as nothing (`"... FROM t " +
    # suffix`) or standing for a whole WHERE term (`"WHERE " + " AND ".join(filters)`): a filter
    # or a LIMIT may be there at run time
    unseen: bool = False
    tree: dict[str, Any] | None = field(default=None, repr=False)  # `body`, once decoded

    @property
    def body(self) -> dict[str, Any]:
        """The statement's tree (the body of its `kind` node), decoded from `json` when first read:
        a statement no rule reads is never decoded, and a file's trees go with the file."""
        if self.tree is None:
            self.tree = statement_trees(self.json)[self.index][self.kind]
        return self.tree

    def has(self, node_type: str) -> bool:
        """Whether a node of this type may occur in the statement: a cheap test before a walk."""
        return f'"{node_type}"' in self.json

    def position(self, location: int | None = None) -> tuple[int, int]:
        """File position of a libpg_query location (UTF-8 byte offset into `sql`)."""
        return self.locator.position(self.to_char(location or 0))

    def text_at(self, location: int | None) -> int:
        """A libpg_query location as an offset into `sql`."""
        return self.to_char(location or 0)


@dataclass(eq=False)
class DbCall:
    """A Python call that sends SQL to a database."""

    node: ast.Call
    method: str
    receiver: ast.expr
    module: PyModule
    queries: list[Query] = field(default_factory=list)

    def param_expr(self, query: Query, number: int) -> ast.expr | None:
        """The Python expression that supplies `$number` of `query`, when it can be seen."""
        origin = query.params.get(number)
        if isinstance(origin, tuple) and origin and origin[0] == "hole":
            return origin[1] if isinstance(origin[1], ast.expr) else None
        arguments = self.node.args[1:]
        keywords = {keyword.arg: keyword.value for keyword in self.node.keywords if keyword.arg}
        supplied = arguments[0] if arguments else keywords.get("params") or keywords.get("parameters") \
            or keywords.get("vars") or keywords.get("args")
        if isinstance(origin, int):
            if len(arguments) > 1:  # asyncpg style: conn.fetch(sql, a, b)
                return arguments[origin] if origin < len(arguments) else None
            if isinstance(supplied, ast.Tuple | ast.List):
                return supplied.elts[origin] if origin < len(supplied.elts) else None
            return supplied
        if isinstance(origin, str):
            if isinstance(supplied, ast.Dict):
                for key, value in zip(supplied.keys, supplied.values, strict=False):
                    if isinstance(key, ast.Constant) and key.value == origin:
                        return value
            if origin in keywords:
                return keywords[origin]
            bound = _bindparams(self.node.args[0] if self.node.args else None, origin)
            return bound or supplied
        return None

    def argument_names(self) -> set[str]:
        """Names the call's parameters (and the holes of its SQL) read."""
        expressions: list[ast.AST] = [*self.node.args[1:], *(keyword.value for keyword in self.node.keywords)]
        for query in self.queries:
            for number in query.params:
                expression = self.param_expr(query, number)
                if expression is not None:
                    expressions.append(expression)
        if self.node.args:
            expressions.append(self.node.args[0])
        return {node.id for expression in expressions for node in ast.walk(expression) if isinstance(node, ast.Name)}

    @property
    def function(self) -> ast.AST | None:
        return self.module.resolver.function_of(self.node)

    @property
    def receiver_name(self) -> str | None:
        return _dotted(self.receiver)

    @property
    def kinds(self) -> set[str]:
        return {query.kind for query in self.queries}


def _bindparams(node: ast.AST | None, name: str) -> ast.expr | None:
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "bindparams":
            for keyword in node.keywords:
                if keyword.arg == name:
                    return keyword.value
        node = node.func.value
    return None


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    if isinstance(node, ast.Await):
        return _dotted(node.value)
    return None


def dotted(node: ast.AST) -> str:
    """`a.b.c` for a name or attribute chain (calls and awaits looked through), else ""."""
    return _dotted(node) or ""


class PyModule:
    """One parsed Python file: its tree, parent links, database calls and string resolver."""

    def __init__(self, path: str, source: SourceFile, tree: ast.Module) -> None:
        self.path = path
        self.source = source
        self.tree = tree
        self.parents: dict[ast.AST, ast.AST] = {}
        self.nodes: list[ast.AST] = []
        stack: list[ast.AST] = [tree]
        while stack:  # one pass for both the node list and the parent links
            node = stack.pop()
            self.nodes.append(node)
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
                stack.append(child)
        self.resolver = Resolver(tree, source, self.parents)
        self.calls: list[DbCall] = []
        self.call_of: dict[ast.Call, DbCall] = {}
        self._local_calls: dict[str, list[ast.Call]] | None = None
        self._functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] | None = None

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        current = self.parents.get(node)
        while current is not None:
            yield current
            current = self.parents.get(current)

    def function_of(self, node: ast.AST) -> ast.AST | None:
        return self.resolver.function_of(node)

    def local_calls(self, name: str) -> list[ast.Call]:
        """Calls of this module's own function or method `name` (`name(...)`, `self.name(...)`),
        indexed once per module: rules ask for every statement."""
        if self._local_calls is None:
            self._local_calls = {}
            for node in self.nodes:
                if isinstance(node, ast.Call):
                    func = node.func
                    if isinstance(func, ast.Name):
                        self._local_calls.setdefault(func.id, []).append(node)
                    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                            and func.value.id in ("self", "cls"):
                        self._local_calls.setdefault(func.attr, []).append(node)
        return self._local_calls.get(name, [])

    def functions_named(self, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        if self._functions is None:
            self._functions = {}
            for node in self.nodes:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self._functions.setdefault(node.name, []).append(node)
        return self._functions.get(name, [])

    def calls_in(self, node: ast.AST) -> list[DbCall]:
        """Database calls anywhere under `node`, in source order."""
        found = [self.call_of[child] for child in ast.walk(node) if child in self.call_of]
        return sorted(found, key=lambda call: (call.node.lineno, call.node.col_offset))


@dataclass
class FileResult:
    """Everything read from one file."""

    path: str
    text: str
    queries: list[Query] = field(default_factory=list)
    module: PyModule | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def statements(self) -> int:
        return len(self.queries)


def decode(path: str, data: bytes) -> tuple[str | None, Diagnostic | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        return None, Diagnostic("unreadable", f"not UTF-8 text ({error.reason} at byte {error.start})", path, 1, 1)


def extract_file(path: str, text: str) -> FileResult:
    if path.endswith(".py") or path.endswith(".pyi"):
        return extract_python(path, text)
    return extract_sql(path, text)


def extract_sql(path: str, text: str) -> FileResult:
    """Every statement of a `.sql` file; each unparsable one is a diagnostic of its own. psql's
    own lines (meta-commands, the data of `COPY ... FROM stdin`) are not SQL and are blanked first."""
    result = FileResult(path, text)
    locator = FileLocator(text)
    _parse_into(result, psql_blanked(text), locator, {}, None)
    return result


def _parse_into(result: FileResult, text: str, locator: Locator, params: dict[int, Any], call: DbCall | None,
                complain: bool = True) -> tuple[list[Query], list[Diagnostic]]:
    queries: list[Query] = []
    problems: list[Diagnostic] = []
    for piece in split_statements(text):
        piece_locator: Locator = OffsetLocator(locator, piece.start)
        piece_params = params
        try:
            kinds, document = parse_document(piece.text)
        except SqlSyntaxError as error:
            retried = _with_placeholders(piece.text, piece_locator) if call is None else None
            retried = retried or _reparsed(tuple_adapted(piece.text, piece_locator), piece_params)
            if retried is None:
                line, column = piece_locator.position(min(error.offset, len(piece.text)))
                problems.append(Diagnostic("unparsable", f"SQL: {error}", result.path, line, column))
                continue
            piece, piece_locator, piece_params, kinds, document = retried
        except (RecursionError, MemoryError, ValueError) as error:
            line, column = piece_locator.position(0)
            problems.append(Diagnostic("unparsable", f"SQL: {type(error).__name__}", result.path, line, column))
            continue
        to_char = byte_to_char(piece.text)
        if len(kinds) == 1:  # the usual case, kept short: its tree is decoded when a rule reads it
            queries.append(Query(result.path, kinds[0], document, 0, piece.text, piece_locator, piece_params, call,
                                 to_char))
            continue
        # several statements in one piece (rare): decoded together now, not each on its own later
        trees = [sqlnodes.unwrap(statement)[1] for statement in statement_trees(document)] if kinds else []
        for index, (kind, tree) in enumerate(zip(kinds, trees, strict=True)):
            queries.append(Query(result.path, kind, document, index, piece.text, piece_locator, piece_params, call,
                                 to_char, tree=tree))
    if complain:
        result.queries += queries
        result.diagnostics += problems
    return queries, problems


def _filter_is_a_hole(query: Query) -> bool:
    """A WHERE term that is a whole Python value, not a driver parameter (`"... WHERE " +
    " AND ".join(filters)`): the statement's filter is built at run time, out of sight."""
    for term in sqlnodes.conjuncts(query.body.get("whereClause")):
        origin = query.params.get(sqlnodes.param_number(term) or 0)
        if isinstance(origin, tuple) and origin and origin[0] == "hole":
            return True
    return False


def _with_placeholders(text: str, locator: Locator) -> tuple[Any, ...] | None:
    """A `.sql` statement meant for a driver (`%s`, `:name`) parsed with its placeholders as `$n`."""
    normalised = normalise(text, locator)
    if normalised.text == text:
        return None
    try:
        kinds, document = parse_document(normalised.text)
    except SqlSyntaxError:
        return _reparsed(tuple_adapted(normalised.text, normalised.locator), normalised.params)
    return Piece(normalised.text, 0), normalised.locator, normalised.params, kinds, document


def _reparsed(adapted: tuple[str, Locator] | None, params: dict[int, Any]) -> tuple[Any, ...] | None:
    if adapted is None:
        return None
    text, locator = adapted
    try:
        kinds, document = parse_document(text)
    except SqlSyntaxError:
        return None
    return Piece(text, 0), locator, params, kinds, document


def extract_python(path: str, text: str) -> FileResult:
    result = FileResult(path, text)
    if not PYTHON_TRIGGER.search(text):
        return result
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as error:
        result.diagnostics.append(Diagnostic("unparsable", f"Python: {error.msg}", path, error.lineno or 1,
                                             error.offset or 1))
        return result
    except (RecursionError, MemoryError, ValueError) as error:
        result.diagnostics.append(Diagnostic("unparsable", f"Python: {type(error).__name__}", path, 1, 1))
        return result
    module = PyModule(path, SourceFile(text), tree)
    result.module = module
    calls = [node for node in module.nodes
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS]
    for node in sorted(calls, key=lambda call: (call.lineno, call.col_offset)):  # DDL applies in file order
        _database_call(result, module, node)
    if pyschema.declares_schema(text):
        _declared_schema(result, module)
    return result


def _declared_schema(result: FileResult, module: PyModule) -> None:
    """Alembic operations and SQLAlchemy tables/models, read as the DDL they stand for."""
    for sql, line, column in pyschema.statements(module.tree, module.nodes):
        queries, _ = _parse_into(result, sql, pyschema.PointLocator(line, column), {}, None, complain=False)
        result.queries += queries


def _database_call(result: FileResult, module: PyModule, node: ast.Call) -> None:
    argument = node.args[0] if node.args else next(
        (keyword.value for keyword in node.keywords if keyword.arg in ("query", "statement", "sql", "operation")),
        None)
    try:
        text: Text | None = module.resolver.resolve(argument)
    except RecursionError:
        text = None
    if text is None or not _SQL_START.match(text.value):
        return
    assert isinstance(node.func, ast.Attribute)
    call = DbCall(node, node.func.attr, node.func.value, module)
    queries: list[Query] = []
    problems: list[Diagnostic] = []
    # A hole may stand for a value, a name (a table, a column list) or nothing SQL cares about (a
    # comment marker): try each reading. SQL built from holes that parses under none of them is
    # dynamic SQL pglab cannot see, not a broken statement, so it costs no diagnostic.
    for reading in ("param", "identifier", "empty") if text.holes else ("param",):
        normalised = normalise(text.value, text, text.holes, holes_as=reading)
        queries, problems = _parse_into(result, normalised.text, normalised.locator, normalised.params, call,
                                        False)
        if not problems:
            break
    for query in queries if text.holes else ():
        query.unseen = reading == "empty" or _filter_is_a_hole(query)
    result.queries += queries
    if not text.holes:
        result.diagnostics += problems
    call.queries = queries
    if call.queries:
        module.calls.append(call)
        module.call_of[node] = call
