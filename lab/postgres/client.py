"""Sessions on a user's server: read-only, bounded, and named.

Every connection pglab opens to a server it did not start goes through `open_session`, so that
three promises hold everywhere: the session is read-only unless the caller asks to write
(`default_transaction_read_only`, which also covers the transactions the caller opens); no statement
can wait for ever, neither behind another session's lock (`lock_timeout`) nor on its own work
(`statement_timeout`), and a session left idle inside a transaction is ended by the server
(`idle_in_transaction_session_timeout`), so a stuck pglab never holds a snapshot for long; and the
session says who it is (`application_name` = "pglab <purpose>"), so a DBA can see it in
pg_stat_activity and pglab's own detectors can leave it out.

The settings are sent with SET after connecting rather than as libpq `options`, which a connection
pooler such as PgBouncer refuses. A timeout surfaces as a psycopg error; `timed_out` tells the
callers, which turn it into a note on a partial result rather than a failure of the whole command.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.launcher import connect

STATEMENT_TIMEOUT_MS = 10_000
LOCK_TIMEOUT_MS = 1_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT_S = 10


def open_session(
    dsn: str,
    purpose: str,
    *,
    write: bool = False,
    autocommit: bool = True,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> psycopg.Connection[Any]:
    """A connection to `dsn` named "pglab `purpose`", with the timeouts set, read-only unless `write`.

    Connection failures are one-line `UserError`s (from `launcher.connect`)."""
    conn = connect(dsn, autocommit=autocommit, timeout=CONNECT_TIMEOUT_S, application_name=f"pglab {purpose}")
    settings = {
        "statement_timeout": f"{int(statement_timeout_ms)}ms",
        "lock_timeout": f"{int(lock_timeout_ms)}ms",
        "idle_in_transaction_session_timeout": f"{IDLE_IN_TRANSACTION_TIMEOUT_MS}ms",
        "default_transaction_read_only": "off" if write else "on",
    }
    try:
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        if not autocommit:
            conn.commit()  # the settings outlive the transaction that set them
    except psycopg.Error as error:
        conn.close()
        raise UserError(f"cannot configure a session on the server: {first_line(error)}") from None
    return conn


def timed_out(error: BaseException) -> bool:
    """Whether `error` is a statement or lock timeout (or a cancel), rather than a real failure."""
    return isinstance(error, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable)


def first_line(error: BaseException) -> str:
    """The server's message without its DETAIL and CONTEXT lines: what fits in a note."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
