"""Where a lab run's data lives, how its sessions are named, and what the run leaves behind.

A run uses pglab's own embedded server, or `--dsn` with `--allow-write` (not needed when the DSN
is a server pglab started itself, known by the secret it carries, never by its port). On someone
else's server the run must not harm what is not its own: every session it opens carries
`lock_timeout`, `statement_timeout` and an application_name; the service's sessions carry a name
unique to this run, so ending them never touches another run's or anyone else's; extensions go
to their usual schema and are removed at the end only if this run created them; the lab schema
is dropped without CASCADE (see `seed.drop_schema`), unless `--keep`.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.identity import is_pglab_server
from pglab.lab.postgres.launcher import EmbeddedPostgres, connect, redact
from pglab.lab.postgres.leftovers import owner_tag, sweep_dead_owners
from pglab.lab.runtime.stats import MARKER
from pglab.lab.trial import seed
from pglab.lab.trial.service.config import APPLICATION_NAME

LAB_SERVER_SETTINGS = {"max_connections": "40"}  # small, so the connection path's naive run can reach it
SESSION_NAME = "pglab lab"
LOCK_TIMEOUT_MS = 5_000
STATEMENT_TIMEOUT_MS = 600_000  # an index build at the large scale takes minutes
SCRATCH_PREFIXES = ("pglab-service-", "pglab-load-")  # named `<prefix><pid>-<start>-...` by their owner


def safe_dsn(dsn: str) -> str:
    """`dsn` with the lab's own session settings added to whatever options it carries."""
    options = conninfo_to_dict(dsn).get("options") or ""
    extra = f"-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return make_conninfo(dsn, options=f"{options} {extra}".strip(), application_name=SESSION_NAME)


def lab_connect(dsn: str) -> psycopg.Connection[Any]:
    return connect(safe_dsn(dsn))


@dataclass
class RunIdentity:
    """This run's tag: the service's application_name, and the scratch directories' prefix."""

    tag: str = field(default_factory=lambda: f"{owner_tag()}-{secrets.token_hex(3)}")

    @property
    def application_name(self) -> str:
        return f"{APPLICATION_NAME}-{self.tag}"


def end_sessions(dsn: str, application_name: str) -> None:
    """End what this run's service sessions still run once it has stopped (a naive query can
    outlive its client): only sessions with this run's name, in this database."""
    with lab_connect(dsn) as conn:
        conn.execute(f"SELECT {MARKER} pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()",
                     (application_name,))


def sweep_scratch() -> list[Path]:
    """Remove service and load scratch directories whose owner died (SIGKILL runs no cleanup)."""
    root = Path(tempfile.gettempdir())
    return [path for prefix in SCRATCH_PREFIXES for path in sweep_dead_owners(root, prefix)]


@dataclass
class Footprint:
    """What this run created outside its schema, so that it removes exactly that."""

    extensions: list[str] = field(default_factory=list)

    def note_extensions(self, conn: psycopg.Connection[Any], before: set[str]) -> None:
        self.extensions += sorted(installed_extensions(conn) - before - set(self.extensions))

    def remove(self, dsn: str) -> list[str]:
        """Drop the lab schema and the extensions this run created, never with CASCADE; returns notes."""
        notes: list[str] = []
        with lab_connect(dsn) as conn:
            try:
                seed.drop_schema(conn)
            except UserError as error:
                notes.append(str(error))
            for name in reversed(self.extensions):
                try:
                    conn.execute(sql.SQL("DROP EXTENSION IF EXISTS {}").format(sql.Identifier(name)))
                except psycopg.errors.DependentObjectsStillExist:
                    notes.append(f"extension {name} left installed: objects pglab did not create use it")
        return notes


def installed_extensions(conn: psycopg.Connection[Any]) -> set[str]:
    return {row[0] for row in conn.execute("SELECT extname FROM pg_extension").fetchall()}


def enable_statement_statistics(dsn: str, footprint: Footprint) -> None:
    """The statement-level detectors read pg_stat_statements; where the server preloads it, make
    sure the view exists (in public, its usual schema). Elsewhere the detectors say so in their notes."""
    with lab_connect(dsn) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        if row and "pg_stat_statements" in row[0]:
            before = installed_extensions(conn)
            with suppress(psycopg.errors.InsufficientPrivilege):  # not ours to create: diagnose notes it
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")
            footprint.note_extensions(conn, before)


@contextmanager
def lab_server(dsn: str | None, allow_write: bool) -> Iterator[str]:
    """The server a run uses: `dsn` (checked now, one clear line if it cannot be reached or may not
    be written), or a fresh embedded one, stopped and removed when the block ends."""
    if dsn:
        with lab_connect(dsn) as conn:
            own = is_pglab_server(conn)
        if not (allow_write or own):
            raise UserError("the lab writes to the database it runs on (schema pglab_lab): "
                            "pass --allow-write to let it use " + redact(dsn))
        yield dsn
        return
    with EmbeddedPostgres(settings=LAB_SERVER_SETTINGS) as server:
        yield server.dsn()
