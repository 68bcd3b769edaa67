"""Schema declared in Python: Alembic operations and SQLAlchemy tables and models, as DDL.

A project whose schema lives in `alembic/versions/*.py` or in SQLAlchemy models has no
CREATE TABLE for pglab to read, so every rule about indexes and keys would go quiet. This module
turns what those files declare into the DDL the schema model already understands:

- Alembic: `op.create_table`, `op.add_column`, `op.create_index`, `op.create_primary_key`,
  `op.create_unique_constraint`, `op.create_foreign_key`, `op.drop_table`, `op.drop_index`,
  `op.drop_column` (what `downgrade()` does is left out: it undoes the schema);
- SQLAlchemy Core: `Table("name", metadata, Column(...), Index(...), ...)`;
- declarative models: a class with `__tablename__`, its `Column(...)` / `mapped_column(...)`
  attributes and its `__table_args__`.

Columns carry `primary_key=`, `unique=`, `index=` and `ForeignKey("table.column")`. Each statement
is reported at the Python line that declares it. Only literal names are read: a table or column
named through a variable is skipped (the schema is incomplete, never wrong).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from pglab.lab.check.sqltext import Locator

TRIGGER = ("create_table", "create_index", "add_column", "__tablename__", "Table(", "mapped_column",
           "create_primary_key", "create_foreign_key", "create_unique_constraint", "drop_table", "drop_index",
           "drop_column")
_TYPES = {"integer": "integer", "biginteger": "bigint", "smallinteger": "smallint", "boolean": "boolean",
          "datetime": "timestamptz", "date": "date", "time": "time", "float": "double precision",
          "numeric": "numeric", "uuid": "uuid", "json": "jsonb", "jsonb": "jsonb", "largebinary": "bytea"}


class PointLocator(Locator):
    """Every offset of a synthesised statement maps to the Python call that declared it."""

    def __init__(self, line: int, column: int) -> None:
        self.line, self.column = line, column

    def position(self, offset: int) -> tuple[int, int]:
        return self.line, self.column


@dataclass
class _Table:
    name: str
    columns: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # CREATE INDEX statements that follow the table


def declares_schema(source: str) -> bool:
    """A cheap test on the text before any tree is walked: most modules declare no schema."""
    return any(word in source for word in TRIGGER)


def statements(tree: ast.Module, nodes: list[ast.AST] | None = None) -> list[tuple[str, int, int]]:
    """(sql, line, column) for every schema declaration in the module, in source order."""
    found: list[tuple[str, int, int]] = []
    nodes = nodes if nodes is not None else list(ast.walk(tree))
    undone = {id(node) for function in nodes  # Alembic's downgrade() undoes upgrade(): not the schema
              if isinstance(function, ast.FunctionDef) and function.name == "downgrade" for node in ast.walk(function)}
    for node in nodes:
        if id(node) in undone:
            continue
        if isinstance(node, ast.Call):
            found += _operation(node)
        elif isinstance(node, ast.ClassDef):
            found += _model(node)
    return sorted(found, key=lambda item: (item[1], item[2]))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def _text(node: ast.AST | None) -> str | None:
    """A literal string, also through Alembic's `op.f("name")` naming wrapper."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and _name(node) == "f" and node.args:
        return _text(node.args[0])
    return None


def _texts(node: ast.AST | None) -> list[str] | None:
    if isinstance(node, ast.List | ast.Tuple):
        items = [_text(item) for item in node.elts]
        return [item for item in items if item] if all(items) else None
    single = _text(node)
    return [single] if single else None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _true(call: ast.Call, name: str) -> bool:
    value = _keyword(call, name)
    return isinstance(value, ast.Constant) and value.value is True


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(name: str) -> str:
    return ".".join(_quote(part) for part in name.split("."))


def _column_type(call: ast.Call, skip: int) -> str:
    for argument in call.args[skip:]:
        kind = _name(argument).lower()
        if kind in _TYPES:
            return _TYPES[kind]
        if kind and kind not in ("foreignkey", "sequence", "computed", "identity"):
            return "text"
    return "text"


def _column(call: ast.Call, table: _Table, name: str | None = None) -> None:
    """`Column("id", Integer, primary_key=True)` / `mapped_column(ForeignKey("users.id"))`."""
    skip = 0 if name else 1
    name = name or (_text(call.args[0]) if call.args else None)
    if not name:
        return
    definition = f"{_quote(name)} {_column_type(call, skip)}"
    for argument in call.args[skip:]:
        if isinstance(argument, ast.Call) and _name(argument) == "ForeignKey" and argument.args:
            target = _text(argument.args[0])
            if target and "." in target:
                parent, key = target.rsplit(".", 1)
                definition += f" REFERENCES {_qualified(parent)} ({_quote(key)})"
    if _true(call, "primary_key"):
        table.constraints.append(f"PRIMARY KEY ({_quote(name)})")
    unique, index = _true(call, "unique"), _true(call, "index")
    if index:  # SQLAlchemy makes `unique=True, index=True` one unique index, not a constraint and an index
        table.after.append(f"CREATE {'UNIQUE ' if unique else ''}INDEX ON {_qualified(table.name)} ({_quote(name)})")
    elif unique:
        definition += " UNIQUE"
    table.columns.append(definition)


def _table_item(call: ast.Call, table: _Table) -> None:
    """An argument of `create_table` / `Table` / `__table_args__`: a column or a constraint."""
    kind = _name(call)
    if kind in ("Column", "mapped_column"):
        _column(call, table)
    elif kind in ("PrimaryKeyConstraint", "UniqueConstraint"):
        columns = [name for name in map(_text, call.args) if name]
        if columns:
            word = "PRIMARY KEY" if kind == "PrimaryKeyConstraint" else "UNIQUE"
            table.constraints.append(f"{word} ({', '.join(map(_quote, columns))})")
    elif kind == "ForeignKeyConstraint" and len(call.args) >= 2:
        local, remote = _texts(call.args[0]), _texts(call.args[1])
        if local and remote and "." in remote[0]:
            parent = remote[0].rsplit(".", 1)[0]
            keys = [item.rsplit(".", 1)[1] for item in remote]
            table.constraints.append(f"FOREIGN KEY ({', '.join(map(_quote, local))}) REFERENCES {_qualified(parent)} "
                                     f"({', '.join(map(_quote, keys))})")
    elif kind == "Index" and call.args:
        name, columns = _text(call.args[0]), [column for column in map(_text, call.args[1:]) if column]
        if name and columns:
            unique = "UNIQUE " if _true(call, "unique") else ""
            table.after.append(f"CREATE {unique}INDEX {_quote(name)} ON {_qualified(table.name)} "
                               f"({', '.join(map(_quote, columns))})")


def _create(table: _Table, node: ast.AST) -> list[tuple[str, int, int]]:
    if not table.columns:
        return []
    line, column = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
    body = ", ".join(table.columns + table.constraints)
    return [(f"CREATE TABLE {_qualified(table.name)} ({body})", line, column),
            *((sql, line, column) for sql in table.after)]


def _operation(call: ast.Call) -> list[tuple[str, int, int]]:
    """One Alembic `op.*` call, or a SQLAlchemy `Table(...)`."""
    kind = _name(call)
    line, column = call.lineno, call.col_offset + 1
    first = _text(call.args[0]) if call.args else None
    if kind == "create_table" and first:
        table = _Table(first)
        for argument in call.args[1:]:
            if isinstance(argument, ast.Call):
                _table_item(argument, table)
        return _create(table, call)
    if kind == "Table" and first and len(call.args) >= 2:
        schema = _keyword(call, "schema")
        table = _Table(_in_schema(first, [ast.Dict([ast.Constant("schema")], [schema])] if schema else []))
        for argument in call.args[2:]:
            if isinstance(argument, ast.Call):
                _table_item(argument, table)
        return _create(table, call)
    if kind == "add_column" and first and len(call.args) >= 2 and isinstance(call.args[1], ast.Call):
        table = _Table(first)
        _column(call.args[1], table)
        return [(f"ALTER TABLE {_qualified(first)} ADD COLUMN {definition}", line, column)
                for definition in table.columns] + [(sql, line, column) for sql in table.after]
    if kind == "create_index" and len(call.args) >= 3:
        name, table_name, columns = _text(call.args[0]), _text(call.args[1]), _texts(call.args[2])
        if name and table_name and columns:
            unique = "UNIQUE " if _true(call, "unique") else ""
            return [(f"CREATE {unique}INDEX {_quote(name)} ON {_qualified(table_name)} "
                     f"({', '.join(map(_quote, columns))})", line, column)]
    if kind in ("create_unique_constraint", "create_primary_key") and len(call.args) >= 3:
        name, table_name, columns = _text(call.args[0]), _text(call.args[1]), _texts(call.args[2])
        word = "UNIQUE" if kind == "create_unique_constraint" else "PRIMARY KEY"
        if name and table_name and columns:
            return [(f"ALTER TABLE {_qualified(table_name)} ADD CONSTRAINT {_quote(name)} "
                     f"{word} ({', '.join(map(_quote, columns))})", line, column)]
    if kind == "create_foreign_key" and len(call.args) >= 5:
        name, source, referent = _text(call.args[0]), _text(call.args[1]), _text(call.args[2])
        local, remote = _texts(call.args[3]), _texts(call.args[4])
        if name and source and referent and local and remote:
            return [(f"ALTER TABLE {_qualified(source)} ADD CONSTRAINT {_quote(name)} FOREIGN KEY "
                     f"({', '.join(map(_quote, local))}) REFERENCES {_qualified(referent)} "
                     f"({', '.join(map(_quote, remote))})", line, column)]
    if kind == "drop_table" and first:
        return [(f"DROP TABLE {_qualified(first)}", line, column)]
    if kind == "drop_index" and first:
        return [(f"DROP INDEX {_quote(first)}", line, column)]
    if kind == "drop_column" and first and len(call.args) >= 2 and _text(call.args[1]):
        return [(f"ALTER TABLE {_qualified(first)} DROP COLUMN {_quote(_text(call.args[1]) or '')}", line, column)]
    return []


def _model(node: ast.ClassDef) -> list[tuple[str, int, int]]:
    """A declarative model: `__tablename__`, its column attributes and its `__table_args__`."""
    name = None
    table_args: list[ast.expr] = []
    attributes: list[tuple[str, ast.Call]] = []
    for statement in node.body:
        target, value = None, None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign):
            target, value = statement.target, statement.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        if target.id == "__tablename__":
            name = _text(value)
        elif target.id == "__table_args__":
            table_args = list(value.elts) if isinstance(value, ast.Tuple) else [value]
        elif isinstance(value, ast.Call) and _name(value) in ("Column", "mapped_column"):
            attributes.append((target.id, value))
    if not name:
        return []
    table = _Table(_in_schema(name, table_args))
    for attribute, call in attributes:
        explicit = _text(call.args[0]) if call.args else None
        _column(call, table, None if explicit else attribute)
    for item in table_args:
        if isinstance(item, ast.Call):
            _table_item(item, table)
    return _create(table, node)


def _in_schema(name: str, options: list[ast.expr]) -> str:
    """`schema.name` when `__table_args__` (a dict, or a tuple ending in one) or `Table(...,
    schema="x")` names a schema other than public."""
    for option in options:
        if isinstance(option, ast.Dict):
            for key, value in zip(option.keys, option.values, strict=True):
                if _text(key) == "schema" and (schema := _text(value)) and schema != "public":
                    return f"{schema}.{name}"
    return name
