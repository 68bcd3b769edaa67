"""Isolation: both sides of a run start from the same baseline, in which every *other* anti-pattern
the lab knows is fixed (its migration applied, its code path fixed); the only difference between
the sides is the entry's own fix."""

from __future__ import annotations

from importlib import resources

import pglast
from pglast.parser import fingerprint
from pglast.stream import RawStream

from pglab.lab.core.catalogue import load_catalogue
from pglab.lab.core.fixes import fix_blocks


def lab_ids() -> list[str]:
    """The anti-patterns the lab can run: catalogue entries that have a load profile."""
    return [entry.id for entry in load_catalogue() if (resources.files("pglab.loads") / f"{entry.id}.py").is_file()]


def migration(entry_id: str, block: str = "migrate") -> list[str]:
    """The statements of a block of the reference fix (`migrate` by default); none when the fix
    is in code alone."""
    if not (resources.files("pglab.fixes") / f"{entry_id}.sql").is_file():
        return []
    return list(pglast.split(fix_blocks(entry_id).get(block, "")))


def setup(entry_id: str) -> list[str]:
    """The entry's `setup` block: the data and schema that make its anti-pattern visible (a wide
    payload, redundant indexes), on both sides of its run and on no other entry's."""
    return migration(entry_id, "setup")


def background_migrations(entry_id: str) -> list[str]:
    """The other lab anti-patterns' migrations, which put them in their fixed state, minus every
    statement of this one's own fix: fixes may share statements, and the naive side must lack its
    whole cure, whoever else brings part of it."""
    own = {fingerprint(statement) for statement in migration(entry_id)}
    statements: list[str] = []
    for other in lab_ids():
        if other != entry_id:
            statements += [s for s in migration(other) if fingerprint(s) not in own and s not in statements]
    return [built_at_once(statement) for statement in statements]


def built_at_once(statement: str) -> str:
    """An index a fix builds CONCURRENTLY, built in one pass: the baseline is applied before any
    traffic, when a concurrent build only costs its second table scan and its waits (the trigram
    index at the small scale: 3 s against 1.5, in every run but its own entry's). The index is the
    same; the fixed side's own migration still runs as written."""
    (raw,) = pglast.parse_sql(statement)
    node = raw.stmt
    if not (isinstance(node, pglast.ast.IndexStmt) and node.concurrent):
        return statement
    node.concurrent = False
    return str(RawStream()(node))


def fixes_in_effect(entry_id: str, fixed: bool) -> list[str]:
    """The ids whose fix a side runs with: every other lab entry, and this one on the fixed side."""
    return [other for other in lab_ids() if fixed or other != entry_id]
