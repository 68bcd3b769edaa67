"""Python source to SQL text: string literals, implicit concatenation, f-strings, `%` and
`.format` compositions, names bound to constants, `text()` / `sql.SQL()` wrappers.

The result is a `Text`: the characters of the SQL with, for every run of them, the file position
they came from, so a finding inside a string built over five lines points at the right column.
Values Python splices in at run time become HOLE characters carrying the expression that
supplies them.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from pglab.lab.check.pyliteral import Part, SourceFile, Text, literal_text
from pglab.lab.check.sqltext import HOLE, FileLocator

PERCENT_FIELD = re.compile(r"%%|%(?:\((\w+)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[sdifrageExXocu]")
FORMAT_FIELD = re.compile(r"\{\{|\}\}|\{([^{}!:]*)(?:![rsa])?(?::[^{}]*)?\}")
SQL_WRAPPERS = {"text", "SQL", "literal_column", "TextClause"}
MAX_DEPTH = 10


class Resolver:
    """Turns an expression into SQL `Text` when it can be read statically.

    Names resolve to the last assignment before the use in the same function, then to module or
    class constants; anything else Python computes at run time becomes a HOLE.
    """

    def __init__(self, tree: ast.Module, source: SourceFile, parents: dict[ast.AST, ast.AST]) -> None:
        self.source = source
        self.parents = parents
        self.module_names: dict[str, list[tuple[int, ast.expr, bool]]] = {}
        self.class_names: dict[str, ast.expr] = {}
        self.function_names: dict[ast.AST, dict[str, list[tuple[int, ast.expr, bool]]]] = {}
        self.tree = tree
        self._returners: dict[str, ast.expr | None] | None = None  # built on the first call that needs it
        for statement in tree.body:
            _collect_assignment(statement, self.module_names)
            if isinstance(statement, ast.ClassDef):
                for item in statement.body:
                    if isinstance(item, ast.Assign | ast.AnnAssign) and item.value is not None:
                        for target in item.targets if isinstance(item, ast.Assign) else [item.target]:
                            if isinstance(target, ast.Name):
                                self.class_names[target.id] = item.value

    def function_of(self, node: ast.AST) -> ast.AST | None:
        current = self.parents.get(node)
        while current is not None and not isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            current = self.parents.get(current)
        return current

    def assignments(self, function: ast.AST | None) -> dict[str, list[tuple[int, ast.expr, bool]]]:
        if function is None:
            return self.module_names
        if function not in self.function_names:
            names: dict[str, list[tuple[int, ast.expr, bool]]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.NamedExpr):
                    _collect_assignment(node, names)
            for entries in names.values():
                entries.sort(key=lambda entry: entry[0])
            self.function_names[function] = names
        return self.function_names[function]

    def value_of(self, name: str, at: ast.AST) -> list[tuple[int, ast.expr, bool]]:
        """The assignments that reach `name` at `at`: the last plain one before it, then the `+=`
        ones after that (how SQL is commonly built up)."""
        line = getattr(at, "lineno", 10**9)
        function = self.function_of(at)
        for scope in (self.assignments(function), self.module_names) if function else (self.module_names,):
            entries = [entry for entry in scope.get(name, ()) if entry[0] < line or scope is self.module_names]
            if not entries:
                continue
            chain: list[tuple[int, ast.expr, bool]] = []
            for entry in reversed(entries):
                chain.append(entry)
                if not entry[2]:
                    break
            return list(reversed(chain))
        return []

    def resolve(self, node: ast.AST | None, depth: int = 0) -> Text | None:
        """SQL text of `node`, or None when it is not a string Python builds statically."""
        if node is None or depth > MAX_DEPTH:
            return None
        if isinstance(node, ast.Constant):
            return literal_text(node, self.source) if isinstance(node.value, str) else None
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node, depth)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.resolve(node.left, depth + 1), self.resolve(node.right, depth + 1)
            if left is None and right is None:
                return None
            return (left or self.hole(node.left)) + (right or self.hole(node.right))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            template = self.resolve(node.left, depth + 1)
            return self._percent(template, node.right, depth) if template else None
        if isinstance(node, ast.Name):
            return self._name(node, depth)
        if isinstance(node, ast.Attribute) and node.attr in self.class_names:
            return self.resolve(self.class_names[node.attr], depth + 1)
        if isinstance(node, ast.IfExp):
            return self.resolve(node.body, depth + 1)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        return None

    def returned(self, name: str) -> ast.expr | None:
        """The one expression the module's function `name` returns (None when it returns in
        several places, or several functions share the name)."""
        if self._returners is None:
            self._returners = {}
            for node in ast.walk(self.tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self._returners[node.name] = None if node.name in self._returners else _single_return(node)
        return self._returners.get(name)

    def hole(self, node: ast.AST) -> Text:
        line, column = self.source.start(node)
        return Text([Part(HOLE, line, column, False, node)])

    def _name(self, node: ast.Name, depth: int) -> Text | None:
        chain = self.value_of(node.id, node)
        if not chain:
            return None
        result: Text | None = None
        for _, value, _augmented in chain:
            piece = self.resolve(value, depth + 1)
            if piece is None:
                piece = self.hole(value)
                if result is None:
                    return None
            result = piece if result is None else result + piece
        return result

    def _fstring(self, node: ast.JoinedStr, depth: int) -> Text:
        segment, line, column = self.source.segment(node)

        locate = FileLocator(segment, line, column)
        cursor = 0
        parts: list[Part] = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                text = value.value
                found = segment.find(text, cursor)
                if found < 0 or "\\" in segment[cursor : found + len(text)]:
                    parts.append(Part(text, line, column, False))
                    continue
                offset = found
                for chunk in text.splitlines(keepends=True):
                    chunk_line, chunk_column = locate.position(offset)
                    parts.append(Part(chunk, chunk_line, chunk_column, True))
                    offset += len(chunk)
                cursor = found + len(text)
            elif isinstance(value, ast.FormattedValue):
                inner = self.resolve(value.value, depth + 1) if value.format_spec is None else None
                parts += inner.parts if inner else self.hole(value.value).parts
        return Text(parts)

    def _percent(self, template: Text, arguments: ast.expr, depth: int) -> Text:
        """`template % args` is Python formatting: its fields are holes, not driver placeholders."""
        if isinstance(arguments, ast.Tuple):
            positional: list[ast.expr] = list(arguments.elts)
            named: dict[str, ast.expr] = {}
        elif isinstance(arguments, ast.Dict):
            positional = []
            named = {key.value: value for key, value in zip(arguments.keys, arguments.values, strict=False)
                     if isinstance(key, ast.Constant) and isinstance(key.value, str)}
        else:
            positional, named = [arguments], {}
        queue = iter(positional)

        def field(match: re.Match[str]) -> ast.expr | str | None:
            if match.group(0) == "%%":
                return "%"
            if match.group(1):
                return named.get(match.group(1))
            return next(queue, None)

        return self._substitute(template, PERCENT_FIELD, field, depth)

    def _format(self, template: Text, call: ast.Call, depth: int) -> Text:
        positional = iter(call.args)
        named = {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}

        def field(match: re.Match[str]) -> ast.expr | str | None:
            if match.group(0) in ("{{", "}}"):
                return match.group(0)[0]
            key = match.group(1).split(".")[0].split("[")[0]
            if not key:
                return next(positional, None)
            if key.isdigit():
                index = int(key)
                return call.args[index] if index < len(call.args) else None
            return named.get(key)

        return self._substitute(template, FORMAT_FIELD, field, depth)

    def _substitute(self, template: Text, pattern: re.Pattern[str], field: Any, depth: int) -> Text:
        parts: list[Part] = []
        for part in template.parts:
            if part.text == HOLE:
                parts.append(part)
                continue
            cursor = 0
            for match in pattern.finditer(part.text):
                before = part.text[cursor : match.start()]
                parts.append(Part(before, part.line, part.column + (cursor if part.exact else 0), part.exact))
                replacement = field(match)
                column = part.column + (match.start() if part.exact else 0)
                if isinstance(replacement, str):
                    parts.append(Part(replacement, part.line, column, False))
                else:
                    inner = self.resolve(replacement, depth + 1) if replacement is not None else None
                    parts += inner.parts if inner else [Part(HOLE, part.line, column, False, replacement)]
                cursor = match.end()
            parts.append(Part(part.text[cursor:], part.line, part.column + (cursor if part.exact else 0),
                              part.exact))
        return Text(parts)

    def _list_items(self, node: ast.Name) -> list[ast.expr] | None:
        """Every item a list of SQL fragments can hold where it is joined (`filters = [...]`, then
        `filters.append("x = :x")` under conditions): all of them, so the text is the statement with
        every optional filter present, the most a run can add; None when the list is not built
        from a literal in plain sight."""
        chain = self.value_of(node.id, node)
        if not chain or not isinstance(chain[0][1], ast.List | ast.Tuple):
            return None
        items = list(chain[0][1].elts)
        for _, value, _augmented in chain[1:]:
            if not isinstance(value, ast.List | ast.Tuple):
                return None
            items += value.elts
        scope = self.function_of(node) or self.tree
        return items + _appended(scope, node.id, chain[0][0], getattr(node, "lineno", 10**9))

    def _call(self, node: ast.Call, depth: int) -> Text | None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in SQL_WRAPPERS and node.args:
            return self.resolve(node.args[0], depth + 1)
        if isinstance(func, ast.Attribute) and name == "format":
            template = self.resolve(func.value, depth + 1)
            return self._format(template, node, depth) if template else None
        if isinstance(func, ast.Attribute) and name in ("bindparams", "columns", "strip", "rstrip", "lstrip"):
            return self.resolve(func.value, depth + 1)
        if (isinstance(func, ast.Name) or _dotted_self(func)) and (returned := self.returned(name)) is not None:
            return self.resolve(returned, depth + 1)  # a helper that returns the SQL it builds
        if isinstance(func, ast.Attribute) and name == "join" and node.args:
            separator = self.resolve(func.value, depth + 1)
            items = node.args[0]
            elements = items.elts if isinstance(items, ast.List | ast.Tuple) else \
                self._list_items(items) if isinstance(items, ast.Name) else None
            if separator is None or not elements:
                return None
            result: Text | None = None
            for item in elements:
                piece = self.resolve(item, depth + 1) or self.hole(item)
                result = piece if result is None else result + separator + piece
            return result
        return None


def _appended(function: ast.AST, name: str, start: int, end: int) -> list[ast.expr]:
    """What `name.append(x)` / `name.extend([x, y])` calls between lines `start` and `end` add."""
    found: list[ast.expr] = []
    for node in ast.walk(function):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == name
                and start <= node.lineno <= end and len(node.args) == 1):
            continue
        if node.func.attr == "append":
            found.append(node.args[0])
        elif node.func.attr == "extend" and isinstance(node.args[0], ast.List | ast.Tuple):
            found.extend(node.args[0].elts)
    return sorted(found, key=lambda item: (item.lineno, item.col_offset))


def _single_return(function: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.expr | None:
    """The expression of a function's only `return` (nested functions aside), else None."""
    found: list[ast.Return] = []
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            found.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))
    return found[0].value if len(found) == 1 else None


def _dotted_self(func: ast.expr) -> bool:
    """`self.helper(...)` / `cls.helper(...)`: a method of the same class."""
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls")


def _collect_assignment(node: ast.AST, names: dict[str, list[tuple[int, ast.expr, bool]]]) -> None:
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name):
                names.setdefault(target.id, []).append((node.lineno, node.value, False))
    elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
        names.setdefault(node.target.id, []).append((node.lineno, node.value, False))
    elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add) and isinstance(node.target, ast.Name):
        names.setdefault(node.target.id, []).append((node.lineno, node.value, True))
    elif isinstance(node, ast.NamedExpr):
        names.setdefault(node.target.id, []).append((node.lineno, node.value, False))
