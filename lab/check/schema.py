"""The schema model: tables, columns, keys and indexes, from DDL or from a live catalog.

Both sources go through the same code: DDL found in the checked files is applied statement by
statement in file order (CREATE, ALTER, DROP, RENAME), and `--dsn` reads the catalog and turns
each index and foreign key back into DDL (`pg_get_indexdef`, `pg_get_constraintdef`) before
applying it. So an expression index means the same thing whichever way it was learnt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.sqltext import SqlSyntaxError, parse_statement
from pglab.lab.core.report import Diagnostic

POSITION_KEY = "pglab_position"  # (line, column) of a constraint, added to its node when the DDL is read
SCHEMA_KINDS = frozenset({"CreateStmt", "IndexStmt", "AlterTableStmt", "DropStmt", "RenameStmt", "AlterRoleSetStmt",
                          "AlterDatabaseSetStmt", "CreateEnumStmt"})


@dataclass(frozen=True)
class Origin:
    """Where a schema object was defined (None for objects read from a live catalog)."""

    path: str
    line: int
    column: int


@dataclass
class Index:
    name: str
    table: str
    keys: tuple[str, ...]  # column name, or canonical() text of an expression
    expressions: tuple[bool, ...]  # which keys are expressions
    unique: bool = False
    primary: bool = False
    predicate: str | None = None  # canonical() of the WHERE of a partial index
    method: str = "btree"
    origin: Origin | None = None


@dataclass
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    references: str
    origin: Origin | None = None


@dataclass
class Table:
    name: str
    columns: dict[str, str] = field(default_factory=dict)  # name -> type
    indexes: dict[str, Index] = field(default_factory=dict)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    origin: Origin | None = None

    @property
    def primary_key(self) -> tuple[str, ...]:
        for index in self.indexes.values():
            if index.primary:
                return tuple(key for key in index.keys)
        return ()

    def btree_indexes(self) -> list[Index]:
        return [index for index in self.indexes.values() if index.method in ("btree", "") and not index.predicate]

    def leads(self, column: str) -> bool:
        """Some B-tree index without a predicate has `column` as its first key."""
        return any(index.keys and not index.expressions[0] and index.keys[0] == column
                   for index in self.btree_indexes())

    def unique_keys(self) -> list[tuple[str, ...]]:
        return [index.keys for index in self.indexes.values()
                if (index.unique or index.primary) and not index.predicate and not any(index.expressions)]


class Schema:
    """Tables by name (`table`, or `schema.table` outside public)."""

    def __init__(self, source: str = "ddl") -> None:
        self.source = source
        self.tables: dict[str, Table] = {}
        self.max_connections: int | None = None
        self.settings: set[str] = set()  # settings given defaults by ALTER ROLE/DATABASE ... SET
        self.sources: list[str] = []  # the files whose DDL built it, in the order applied
        self.enums: set[str] = set()  # enum types: a column of one holds a handful of distinct values
        self.skipped: list[str] = []  # tables of the live catalog left out: another session holds them locked

    @property
    def index_count(self) -> int:
        return sum(len(table.indexes) for table in self.tables.values())

    def summary(self) -> dict[str, Any]:
        """The schema as every output format reports it (`summary.schema` in JSON)."""
        return {"source": self.source, "tables": len(self.tables), "indexes": self.index_count,
                "files": list(self.sources), "description": self.describe()}

    def warnings(self, statements: int) -> list[Diagnostic]:
        """An empty schema while there are statements to judge: every rule that needs to know the
        tables and their indexes went quiet, which must not read as "clean"."""
        if self.skipped:
            return [Diagnostic("schema-partial", f"left out of the schema, locked by another session (ACCESS "
                                                 f"EXCLUSIVE): {', '.join(self.skipped)}; nothing was judged "
                                                 "against them")]
        if self.tables or self.source != "ddl" or not statements:
            return []
        return [Diagnostic("no-schema", "no CREATE TABLE found in the checked paths, so rules about indexes and "
                                        "keys had nothing to judge against: add the schema or migrations to "
                                        "the paths, or pass --dsn")]

    def describe(self) -> str:
        """One line for every output format: what schema the rules saw, and where it came from."""
        what = f"{_plural(len(self.tables), 'table')}, {_plural(self.index_count, 'index', 'indexes')}"
        if self.source == "catalog":
            return f"{what} from the live catalog (--dsn)"
        if not self.sources:
            return f"{what} (no DDL found)"
        shown = ", ".join(self.sources[:3]) + (f" and {len(self.sources) - 3} more" if len(self.sources) > 3 else "")
        return f"{what} from {_plural(len(self.sources), 'file')} ({shown})"

    def table(self, name: str | None) -> Table | None:
        if not name:
            return None
        return self.tables.get(name.removeprefix("public."))

    def __bool__(self) -> bool:
        return bool(self.tables)

    def fingerprint(self) -> str:
        state = (sorted(self.tables.items()), self.max_connections, sorted(self.settings), sorted(self.enums))
        return hashlib.sha1(repr(state).encode()).hexdigest()

    # -- applying DDL ------------------------------------------------------------------------

    def apply(self, kind: str, body: dict[str, Any], origin: Origin | None = None) -> None:
        """Apply one DDL statement; anything the model does not describe is ignored."""
        handler = getattr(self, f"_apply_{kind}", None)
        if handler is not None:
            handler(body, origin)

    def apply_sql(self, sql: str, origin: Origin | None = None) -> None:
        try:
            statements = parse_statement(sql)
        except SqlSyntaxError:
            return
        for statement in statements:
            kind, body = n.unwrap(statement)
            self.apply(kind, body, origin)

    def _apply_AlterRoleSetStmt(self, body: dict[str, Any], origin: Origin | None) -> None:
        setting = n.unwrap({"VariableSetStmt": body.get("setstmt", {})})[1].get("name")
        if setting:
            self.settings.add(setting)

    _apply_AlterDatabaseSetStmt = _apply_AlterRoleSetStmt

    def _apply_CreateEnumStmt(self, body: dict[str, Any], origin: Origin | None) -> None:
        names = n.strings(body.get("typeName"))
        if names:
            self.enums.add(names[-1])

    def few_values(self, table_name: str | None, column: str) -> bool:
        """The column can hold only a handful of distinct values: boolean, or an enum type."""
        table = self.table(table_name)
        kind = table.columns.get(column, "") if table else ""
        return kind in ("bool", "boolean") or kind.rsplit(".", 1)[-1] in self.enums

    def _apply_CreateStmt(self, body: dict[str, Any], origin: Origin | None) -> None:
        name = n.relation_name(body.get("relation", {}))
        if name in self.tables:  # IF NOT EXISTS, or a second definition a server would refuse: the first stands
            return
        table = Table(name, origin=origin)
        self.tables[name] = table
        for element in body.get("tableElts", []):
            kind, item = n.unwrap(element)
            if kind == "ColumnDef":
                self._add_column(table, item, origin)
            elif kind == "Constraint":
                self._add_constraint(table, item, origin, ())

    def _add_column(self, table: Table, item: dict[str, Any], origin: Origin | None) -> None:
        column = item.get("colname", "")
        table.columns[column] = _type_name(item.get("typeName", {}))
        for constraint in item.get("constraints", []):
            self._add_constraint(table, n.unwrap(constraint)[1], origin, (column,))

    def _add_constraint(self, table: Table, item: dict[str, Any], origin: Origin | None,
                        columns: tuple[str, ...]) -> None:
        contype = item.get("contype")
        if POSITION_KEY in item and origin is not None:
            origin = Origin(origin.path, *item[POSITION_KEY])
        keys = tuple(n.strings(item.get("keys"))) or columns
        if contype == "CONSTR_PRIMARY":
            name = item.get("conname") or f"{table.name}_pkey"
            table.indexes[name] = Index(name, table.name, keys, (False,) * len(keys), True, True, origin=origin)
        elif contype == "CONSTR_UNIQUE":
            name = item.get("conname") or f"{table.name}_{'_'.join(keys)}_key"
            table.indexes[name] = Index(name, table.name, keys, (False,) * len(keys), True, origin=origin)
        elif contype == "CONSTR_FOREIGN":
            fk_columns = tuple(n.strings(item.get("fk_attrs"))) or columns
            name = item.get("conname") or f"{table.name}_{'_'.join(fk_columns)}_fkey"
            references = n.relation_name(item.get("pktable", {}))
            # the same key declared again (a migration re-adding it ON DELETE CASCADE) replaces the first
            table.foreign_keys = [fk for fk in table.foreign_keys
                                  if fk.name != name and (fk.columns, fk.references) != (fk_columns, references)]
            table.foreign_keys.append(ForeignKey(name, fk_columns, references, origin))

    def _apply_IndexStmt(self, body: dict[str, Any], origin: Origin | None) -> None:
        table = self.table(n.relation_name(body.get("relation", {})))
        if table is None:
            return
        keys: list[str] = []
        expressions: list[bool] = []
        for element in body.get("indexParams", []):
            item = n.unwrap(element)[1]
            if item.get("name"):
                keys.append(item["name"])
                expressions.append(False)
            else:
                keys.append(n.canonical(item.get("expr")))
                expressions.append(True)
        plain = [key for key, expression in zip(keys, expressions, strict=True) if not expression]
        name = body.get("idxname") or f"{table.name}_{'_'.join(plain) or 'expr'}_idx"
        if body.get("if_not_exists") and name in table.indexes:
            return
        where = body.get("whereClause")
        table.indexes[name] = Index(name, table.name, tuple(keys), tuple(expressions), bool(body.get("unique")),
                                    bool(body.get("primary")), n.canonical(where) if where else None,
                                    body.get("accessMethod") or "btree", origin)

    def _apply_AlterTableStmt(self, body: dict[str, Any], origin: Origin | None) -> None:
        table = self.table(n.relation_name(body.get("relation", {})))
        if table is None or body.get("objtype", "OBJECT_TABLE") != "OBJECT_TABLE":
            return
        for command in body.get("cmds", []):
            item = n.unwrap(command)[1]
            subtype = item.get("subtype")
            kind, definition = n.unwrap(item.get("def"))
            if subtype == "AT_AddColumn" and kind == "ColumnDef":
                self._add_column(table, definition, origin)
            elif subtype == "AT_DropColumn":
                self._drop_column(table, item.get("name", ""))
            elif subtype == "AT_AddConstraint" and kind == "Constraint":
                self._add_constraint(table, definition, origin, ())
            elif subtype == "AT_DropConstraint":
                table.indexes.pop(item.get("name", ""), None)
                table.foreign_keys = [fk for fk in table.foreign_keys if fk.name != item.get("name")]
            elif subtype == "AT_AlterColumnType" and kind == "ColumnDef":
                table.columns[item.get("name", "")] = _type_name(definition.get("typeName", {}))

    def _drop_column(self, table: Table, column: str) -> None:
        table.columns.pop(column, None)
        table.indexes = {name: index for name, index in table.indexes.items()
                         if column not in index.keys and column not in (index.predicate or "")}
        table.foreign_keys = [fk for fk in table.foreign_keys if column not in fk.columns]

    def _apply_DropStmt(self, body: dict[str, Any], origin: Origin | None) -> None:
        kind = body.get("removeType")
        for item in body.get("objects", []):
            names = n.strings(n.unwrap(item)[1].get("items"))
            if not names:
                continue
            qualified = ".".join(names[-2:]) if len(names) > 1 and names[-2] != "public" else names[-1]
            if kind == "OBJECT_TABLE":
                self.tables.pop(qualified, None)
            elif kind == "OBJECT_INDEX":
                for table in self.tables.values():
                    table.indexes.pop(names[-1], None)

    def _apply_RenameStmt(self, body: dict[str, Any], origin: Origin | None) -> None:
        kind = body.get("renameType")
        relation = n.relation_name(body.get("relation", {}))
        new = body.get("newname", "")
        if kind == "OBJECT_TABLE" and relation in self.tables:
            if "." in relation:  # ALTER TABLE stats.user_new RENAME TO user: it stays in its schema
                new = f"{relation.rsplit('.', 1)[0]}.{new}"
            table = self.tables.pop(relation)
            table.name = new
            self.tables[new] = table
        elif kind == "OBJECT_COLUMN" and (owner := self.table(relation)) is not None:
            old = body.get("subname", "")
            if old in owner.columns:
                owner.columns[new] = owner.columns.pop(old)
            for index in owner.indexes.values():
                index.keys = tuple(new if key == old else key for key in index.keys)
            for fk in owner.foreign_keys:
                fk.columns = tuple(new if key == old else key for key in fk.columns)
        elif kind == "OBJECT_INDEX":
            for table in self.tables.values():
                if relation in table.indexes:
                    index = table.indexes.pop(relation)
                    index.name = new
                    table.indexes[new] = index


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _type_name(type_name: dict[str, Any]) -> str:
    names = [name for name in n.strings(type_name.get("names")) if name != "pg_catalog"]
    return ".".join(names) + ("[]" if type_name.get("arrayBounds") else "")


_CATALOG_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY n.nspname, c.relname, a.attnum
"""
_CATALOG_INDEXES = """
SELECT n.nspname, t.relname, pg_get_indexdef(x.indexrelid), x.indisprimary, i.relname
FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE t.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND NOT (t.oid = ANY(%s::oid[]))
ORDER BY 1, 2, 5
"""
_CATALOG_FOREIGN_KEYS = """
SELECT n.nspname, t.relname, c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3
"""


def _qualified(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_from_catalog(dsn: str) -> Schema:
    """Read the live catalog in a read-only transaction: nothing is written to the user's server."""
    import psycopg

    from pglab.lab.core.errors import UserError
    from pglab.lab.core.sql import LOCKED_RELATIONS_SQL
    from pglab.lab.postgres.client import open_session

    schema = Schema(source="catalog")
    try:
        with open_session(dsn, "check", autocommit=False) as conn:
            conn.read_only = True
            for nspname, relname, column, type_name in conn.execute(_CATALOG_COLUMNS):
                name = _qualified(nspname, relname)
                schema.tables.setdefault(name, Table(name)).columns[column] = type_name
            locked = conn.execute(LOCKED_RELATIONS_SQL).fetchall()
            schema.skipped = sorted(name for _, name in locked)
            for name in schema.skipped:  # its indexes cannot be read now: judge nothing against it
                schema.tables.pop(name, None)
            locked_oids = [oid for oid, _ in locked]
            for nspname, relname, definition, primary, index_name in conn.execute(_CATALOG_INDEXES, (locked_oids,)):
                schema.apply_sql(definition)
                table = schema.table(_qualified(nspname, relname))
                if table is not None and index_name in table.indexes:
                    table.indexes[index_name].primary = bool(primary)
            for nspname, relname, conname, definition in conn.execute(_CATALOG_FOREIGN_KEYS):
                target = ".".join(_quote(part) for part in (nspname, relname))
                schema.apply_sql(f"ALTER TABLE {target} ADD CONSTRAINT {_quote(conname)} {definition}")
            row = conn.execute("SHOW max_connections").fetchone()
            schema.max_connections = int(row[0]) if row else None
    except psycopg.Error as error:
        raise UserError(f"cannot read the schema from --dsn: {str(error).strip().splitlines()[0]}") from None
    return schema
