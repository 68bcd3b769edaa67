"""The order in which the DDL of many files builds one schema.

File-name order is not dependency order: `create_foreign_keys.sql` sorts before
`create_tables.sql`, `V10__x.sql` before `V2__y.sql`, and a `drop_tables.sql` applied after
everything wipes the schema. So: files are taken in natural order (digit runs compared as
numbers, so migration versions apply in their own order); a file whose ALTERs or indexes name a
table another file creates waits for that file; and teardown scripts (files whose only DDL is
DROP, or named as a down migration) are skipped, as is the scratch DDL of Python test modules.
Statements inside one file keep their order.
"""

from __future__ import annotations

import functools
import heapq
import re
from pathlib import Path, PurePath
from typing import Any

from pglab.lab.check import sqlnodes as n

Statement = tuple[str, dict[str, Any], int, int]  # kind, body, line, column
_DIGITS = re.compile(r"(\d+)")
_DOWN = re.compile(r"(^|[._-])(down|downgrade|rollback|teardown)([._-]|$)", re.I)
_NEEDS = ("IndexStmt", "AlterTableStmt", "RenameStmt")


def natural_key(path: str) -> tuple[tuple[Any, ...], ...]:
    """`V2__a.sql` before `V10__b.sql`: digit runs compare as numbers, part by part."""
    return tuple(tuple(int(chunk) if chunk.isdigit() else chunk.lower() for chunk in _DIGITS.split(part))
                 for part in PurePath(path).parts)


def is_teardown(path: str, statements: list[Statement]) -> bool:
    """A script that takes the schema down: named as a down migration (`0003_x.down.sql`,
    `rollback.sql`), or, outside a migration sequence, one whose DDL only drops, tables among
    them (`drop_tables.sql`). A versioned migration that drops an index or an obsolete table is
    history to apply in its turn."""
    if not statements:
        return False
    if _DOWN.search(PurePath(path).stem):
        return True
    drops_tables = any(kind == "DropStmt" and body.get("removeType") == "OBJECT_TABLE" for kind, body, *_ in statements)
    return drops_tables and all(kind == "DropStmt" for kind, *_ in statements) and not is_migration(path)


def is_test_module(path: str) -> bool:
    """A Python test module (`test_*.py`, `*_test.py`, `conftest.py`): the tables its setup creates
    and drops are scratch, not the application's schema."""
    name = PurePath(path).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py")


def _created(statements: list[Statement]) -> set[str]:
    return {n.relation_name(body.get("relation", {})) for kind, body, *_ in statements if kind == "CreateStmt"}


def _needed(statements: list[Statement], own: set[str]) -> set[str]:
    needs = {n.relation_name(body.get("relation", {})) for kind, body, *_ in statements if kind in _NEEDS}
    return {name for name in needs if name and name not in own}


def _creators(created: list[set[str]]) -> dict[str, int]:
    """The file that defines each table (`created`: the tables each file creates). When several
    do (a full schema dump beside the migrations that led to it), the one creating the most
    tables wins, the later on a tie: it is the schema as it stands, and the others' CREATEs of
    the same table are history."""
    creator: dict[str, int] = {}
    for index, names in enumerate(created):
        for name in names:
            if name not in creator or len(names) >= len(created[creator[name]]):
                creator[name] = index
    return creator


_REVISION = re.compile(r"""^(revision|down_revision)\s*(?::[^=\n]*)?=\s*['"]([\w-]+)['"]""", re.M)


def _revisions(path: str) -> tuple[str, str | None] | None:
    """(revision, down_revision) of an Alembic migration file, None for any other file."""
    if not path.endswith(".py"):
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = {match.group(1): match.group(2) for match in _REVISION.finditer(text)}
    return (found["revision"], found.get("down_revision")) if "revision" in found else None


def alembic_chain(kept: list[tuple[str, list[Statement]]]) -> list[tuple[str, list[Statement]]]:
    """Alembic migrations in their `down_revision` order: their names start with a random hash,
    so file-name order is no order at all (a revision that drops an index applied before the
    one that creates it would leave the index in). They keep the places they held among the
    other files; a merge revision (several parents) or a broken chain counts from the start."""
    revisions = {index: found for index, (path, _) in enumerate(kept) if (found := _revisions(path))}
    if len(revisions) < 2:
        return kept
    by_revision = {revision: index for index, (revision, _) in revisions.items()}
    depth: dict[int, int] = {}
    for start in revisions:
        trail: list[int] = []
        index: int | None = start
        while index is not None and index not in depth and index not in trail:
            trail.append(index)
            index = by_revision.get(revisions[index][1] or "")
        base = depth[index] if index is not None and index in depth else -1  # a root, or a cycle
        for offset, item in enumerate(reversed(trail), start=1):
            depth[item] = base + offset
    result = list(kept)
    for slot, index in zip(sorted(revisions), sorted(revisions, key=lambda item: (depth[item], item)), strict=True):
        result[slot] = kept[index]
    return result


def ordered(files: list[tuple[str, list[Statement]]]) -> list[tuple[str, list[Statement]]]:
    """`files` (path, DDL) in the order to apply them, teardown scripts left out: each file after
    the files that define the tables it alters, indexes or creates again."""
    kept = alembic_chain(sorted(((path, ddl) for path, ddl in files
                                 if ddl and not is_teardown(path, ddl) and not is_test_module(path)),
                                key=lambda item: natural_key(item[0])))
    created = [_created(ddl) for _, ddl in kept]  # once per file: a large schema has thousands of tables
    creator = _creators(created)
    waits_for = [{creator[name] for name in _needed(ddl, own) | own if name in creator} - {index}
                 for index, ((_, ddl), own) in enumerate(zip(kept, created, strict=True))]
    dependents: list[list[int]] = [[] for _ in kept]  # who waits for each file, so a file done wakes only them
    for other, needs in enumerate(waits_for):
        for index in needs:
            dependents[index].append(other)
    done: set[int] = set()
    ready = [index for index, needs in enumerate(waits_for) if not needs]
    heapq.heapify(ready)
    result = []
    while len(done) < len(kept):
        if not ready:  # a cycle (two files altering each other's tables): take the earliest left
            heapq.heappush(ready, min(index for index in range(len(kept)) if index not in done))
        index = heapq.heappop(ready)
        if index in done:
            continue
        done.add(index)
        result.append(kept[index])
        for other in dependents[index]:
            needs = waits_for[other]
            if other not in done and index in needs:
                needs.discard(index)
                if not needs:
                    heapq.heappush(ready, other)
    return result


_MIGRATION_DIRS = frozenset({"migrations", "migration", "migrate", "updates", "versions", "alembic", "flyway",
                             "changesets", "changelog"})
_VERSIONED = re.compile(r"^(V|R__)?\d+([._-]\d+)*([._-]|__)", re.I)


@functools.lru_cache(maxsize=4096)
def is_migration(path: str) -> bool:
    """A migration script: in a migrations-like folder, or named by its version (`V3__x.sql`,
    `0007_add_x.sql`). Its UPDATEs and DELETEs run once, not on every request. (Asked of every
    statement, so answered once per path.)"""
    parts = PurePath(path).parts
    return any(part.lower() in _MIGRATION_DIRS for part in parts[:-1]) or bool(_VERSIONED.match(parts[-1]))
