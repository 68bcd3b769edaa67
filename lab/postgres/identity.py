"""Is this pglab's own server? Decided by a secret the server carries, never by its address.

Why: a port number says nothing about who runs the server behind it (another host, another
cluster that took the port after pglab's stopped, an SSH tunnel). Anything that relaxes a safety
rule on "pglab's own throwaway server" (DDL without `--allow-ddl`, writes without
`--allow-write`) must know the server for sure. Every embedded server gets a fresh random secret
in the custom setting `pglab.instance` (written into its data directory, not its command line,
so that `ps` does not show it); the process that started it registers the secret here, and
`pglab db start` records it in its state file (mode 0600). A server is pglab's when the value it
reports is one of those secrets.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

from pglab.lab.postgres.state import read_state

INSTANCE_SETTING = "pglab.instance"
_started_here: set[str] = set()


def new_instance_secret() -> str:
    return secrets.token_hex(16)


def register_instance(secret: str) -> None:
    """Called by the launcher once its server is ready: this process now knows it."""
    _started_here.add(secret)


def forget_instance(secret: str) -> None:
    _started_here.discard(secret)


def known_secrets() -> set[str]:
    """Secrets of servers this process started, plus the one `pglab db start` recorded."""
    known = set(_started_here)
    state = read_state()
    if state and isinstance(state.get("instance"), str):
        known.add(state["instance"])
    return known


def server_secret(conn: psycopg.Connection[Any]) -> str | None:
    """The `pglab.instance` value the server reports, or None (not set, or cannot ask)."""
    try:
        row = conn.execute("SELECT current_setting(%s, true)", (INSTANCE_SETTING,)).fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row and row[0] else None


def is_pglab_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether `conn` is connected to a server pglab started (this process or `pglab db start`)."""
    carried = server_secret(conn)
    if not carried:
        return False
    return any(secrets.compare_digest(carried, known) for known in known_secrets())
