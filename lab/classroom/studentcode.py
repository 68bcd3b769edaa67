"""The student's copy of a code path: the naive implementation as a file of its own.

A path module holds both implementations, the routes and what the lab predicts; a student must get
only the code under exercise. So the file is cut out of the module's source, not re-typed: the
imports, the `naive` function renamed `handler`, and the module-level helpers it uses (found by
name, transitively). Its SQL, which the module reads from `fixes/<id>.sql`, is written into the
file as a constant, since the SQL is what the student will most likely change. Comments and
formatting survive because the file is assembled from source segments, not from `ast.unparse`.
"""

from __future__ import annotations

import ast
import inspect

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.trial.service import paths

HANDLER = "handler"  # the name the service calls in a student's file
_STATEMENTS_IMPORT = "pglab.lab.trial.service.paths"


def student_source(entry_id: str, docstring: str, implementation: str = "naive") -> str:
    """The text of the student's file for `entry_id`, headed by `docstring`: the naive code, or
    (`implementation="fixed"`) the reference solution in the same shape, which is how the tests
    and a teacher check that the exercise can be passed."""
    source = inspect.getsource(paths.module(entry_id))
    tree = ast.parse(source)
    definitions = _top_level(tree)
    keep = _needed(definitions, implementation)
    imports = "\n".join(ast.get_source_segment(source, node) or "" for node in tree.body if _is_import(node))
    parts = [f'"""{docstring.strip()}\n"""\n\n{imports}']
    if any(_reads_sql(definitions[name]) for name in keep):
        sql = paths.statements(f"{paths.__name__}.{entry_id}", implementation)
        parts.append("SQL = (\n" + "".join(f'    """\n{text}\n""",\n' for text in sql) + ")")
    for node in tree.body:
        kept = [name for name in _names(node) if name in keep]
        if kept:
            parts.append(_segment(source, node, kept[0], implementation))
    return "\n\n\n".join(part for part in parts if part) + "\n"


def _segment(source: str, node: ast.stmt, name: str, implementation: str) -> str:
    """The node's source with its decorators; the implementation renamed `handler`, its SQL lookup
    replaced by `SQL`."""
    lines = source.splitlines()
    first = min([node.lineno, *(decorator.lineno for decorator in getattr(node, "decorator_list", []))])
    text = "\n".join(lines[first - 1 : node.end_lineno])
    for call in ast.walk(node):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "statements":
            text = text.replace(ast.get_source_segment(source, call) or "", "SQL")
    if name == implementation:
        text = text.replace(f"def {implementation}(", f"def {HANDLER}(", 1)
    return text


def _reads_sql(node: ast.stmt) -> bool:
    return any(isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "statements"
               for call in ast.walk(node))


def _is_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module != _STATEMENTS_IMPORT
    return isinstance(node, ast.Import)


def _names(node: ast.stmt) -> list[str]:
    """The names a top-level statement defines: a function's or class's, or every name an
    assignment binds (`MIN_LIMIT, MAX_LIMIT = 4, 10` binds two)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    bound = [element for target in targets
             for element in (target.elts if isinstance(target, ast.Tuple | ast.List) else [target])]
    return [name.id for name in bound if isinstance(name, ast.Name)]


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    return {name: node for node in tree.body for name in _names(node)}


def _needed(definitions: dict[str, ast.stmt], root: str) -> set[str]:
    """`root` and every top-level definition it refers to, transitively."""
    needed: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        if name in needed or name not in definitions:
            continue
        needed.add(name)
        pending += [node.id for node in ast.walk(definitions[name]) if isinstance(node, ast.Name)]
    return needed


def reference_migration(entry_id: str) -> str:
    """The reference fix's DDL, as the text a student would put in migration.sql."""
    return fix_blocks(entry_id).get("migrate", "")
