"""Client-side capture of every statement sent through psycopg 3, for the pytest plugin.

psycopg has no query hook, so the capture wraps the methods every cursor and connection class
inherits (`execute`, `executemany`, `stream`, `copy`, and the connection's internal command path
that sends BEGIN / COMMIT / ROLLBACK / SAVEPOINT). The code under test creates its connections,
cursors and pools as usual and changes nothing. The wrappers are installed once per session and
cost one global read per call while no test is recording; while a test records, each statement
costs a frame walk (to find the first frame outside libraries) and two clock reads. Everything
that needs parsing (fingerprints, statement classes) is done after the test, once per distinct
text.

Transactions are followed with libpq's transaction status after each statement, per connection:
a transaction opens when the status leaves IDLE and closes when it returns to it, and the time
between two statements of an open transaction is time the client spent elsewhere while the
server held the transaction open.
"""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import pq
from psycopg.conninfo import make_conninfo
from psycopg.sql import Composable

_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)
_IDLE = pq.TransactionStatus.IDLE


@dataclass(slots=True)
class Statement:
    """One statement as the client sent it. `control` marks the commands psycopg sends on its own
    (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, a named cursor's FETCH and CLOSE), which no
    budget counts; `batch` is the size of an executemany."""

    sql: str
    has_params: bool
    params: Any
    path: str | None
    line: int | None
    start: float
    duration: float
    connection: int
    control: bool = False
    batch: int = 1
    failed: bool = False
    source: str = "client"

    @property
    def call_site(self) -> str:
        if self.source == "server":
            return "another process (pg_stat_statements)"
        return f"{self.path}:{self.line}" if self.path else "<library code>"


@dataclass(slots=True)
class Transaction:
    """A transaction as one connection saw it; `idle_gap` is the longest client-side pause
    between two of its statements, with the call sites on either side of the pause."""

    connection: int
    start: float
    end: float
    statements: int
    path: str | None
    line: int | None
    idle_gap: float = 0.0
    gap_from: str | None = None
    gap_to: str | None = None
    left_open: bool = False
    inherited: bool = False  # already open when the test began (a fixture's transaction)
    last_end: float = 0.0
    last_site: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class ConnectionInfo:
    dsn: str
    dbname: str


@dataclass
class Recorder:
    """Everything one test sent, in completion order, from any thread."""

    statements: list[Statement] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    connections: dict[int, ConnectionInfo] = field(default_factory=dict)
    _open: dict[int, Transaction] = field(default_factory=dict)
    _handles: dict[int, Any] = field(default_factory=dict)

    def record(self, conn: Any, sql: Any, params: Any, start: float, end: float, *,
               control: bool = False, batch: int = 1, failed: bool = False) -> None:
        key = id(conn)
        first_sight = key not in self.connections
        if first_sight:
            self.connections[key] = _connection_info(conn)
            self._handles[key] = conn
        path, line = call_site(sys._getframe(1))
        statement = Statement(_text(sql, conn), params is not None, params, path, line, start, end - start, key,
                              control, batch, failed)
        self.statements.append(statement)
        self._follow_transaction(conn, statement, end, first_sight)

    def _follow_transaction(self, conn: Any, statement: Statement, end: float, first_sight: bool) -> None:
        status = conn.pgconn.transaction_status
        current = self._open.get(statement.connection)
        if current is None and status not in _IN_TRANSACTION:
            return  # autocommit, or between transactions: the common case, kept cheap
        site = statement.call_site
        if current is not None:
            gap = statement.start - current.last_end
            if gap > current.idle_gap:
                current.idle_gap, current.gap_from, current.gap_to = gap, current.last_site, site
            current.statements += 1
            current.last_end, current.last_site = end, site
            if status == _IDLE:
                current.end = end
                self.transactions.append(self._open.pop(statement.connection))
        else:
            # A connection first seen already inside a transaction (not opened by this statement)
            # holds one a fixture began before the test: its length is the test's, not the code's.
            opened_here = statement.control or statement.sql.lstrip()[:5].upper() in ("BEGIN", "START")
            self._open[statement.connection] = Transaction(
                connection=statement.connection, start=statement.start, end=end, statements=1,
                path=statement.path, line=statement.line, last_end=end, last_site=site,
                inherited=first_sight and not opened_here,
            )

    def finish(self) -> None:
        """Close the books on transactions still open when the test ends: a connection closed
        mid-transaction ended it at its last statement; one still open holds it until now."""
        now = time.perf_counter()
        for key, current in list(self._open.items()):
            handle = self._handles.get(key)
            still_open = handle is not None and not handle.closed
            current.end = now if still_open else current.last_end
            current.left_open = still_open
            if still_open and now - current.last_end > current.idle_gap:
                current.idle_gap, current.gap_from, current.gap_to = (
                    now - current.last_end, current.last_site, "<end of test>")
            self.transactions.append(current)
        self._open.clear()
        self._handles.clear()

    def since(self, index: int) -> list[Statement]:
        return self.statements[index:]


def _connection_info(conn: Any) -> ConnectionInfo:
    """How to reach the same database again (host, port, user, dbname, options, and the password
    that `get_parameters` leaves out), for the plan checks that run after the test."""
    info = conn.info
    params = info.get_parameters()
    if info.password:
        params["password"] = info.password
    return ConnectionInfo(dsn=make_conninfo(**params), dbname=info.dbname)


def _text(sql: Any, conn: Any) -> str:
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes | bytearray | memoryview):
        return bytes(sql).decode("utf-8", "replace")
    if isinstance(sql, Composable):
        return sql.as_string(conn)
    return str(sql)


# --- where a statement comes from -------------------------------------------------------------

_OWN_FILES = frozenset(str(Path(__file__).with_name(name)) for name in (
    "capture.py", "pytest_plugin.py", "querychecks.py", "plans.py", "testing.py"))
_display_name: dict[str, str | None] = {}  # file -> how to show it, None for library code
_root = ""


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.USER_SITE:
        roots.add(site.USER_SITE)
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots) + tuple(
        os.path.join(root, "") for root in roots)


_PREFIXES = _library_prefixes()


def _display(filename: str) -> str | None:
    if filename.startswith("<") or filename in _OWN_FILES or filename.startswith(_PREFIXES):
        return None
    if _root and filename.startswith(_root):
        return filename[len(_root):]
    return filename


def call_site(frame: Any) -> tuple[str | None, int | None]:
    """The first frame outside the standard library, installed packages and this capture code:
    the line of the user's code that sent the statement (relative to the project root)."""
    while frame is not None:
        filename = frame.f_code.co_filename
        try:
            shown = _display_name[filename]
        except KeyError:
            shown = _display_name[filename] = _display(filename)
        if shown is not None:
            return shown, frame.f_lineno
        frame = frame.f_back
    return None, None


# --- the wrappers -------------------------------------------------------------------------------

_active: Recorder | None = None
_originals: list[tuple[type, str, Any]] = []


def activate(recorder: Recorder | None) -> None:
    """Route statements to `recorder` (None stops recording)."""
    global _active
    _active = recorder


@contextmanager
def _recorded(recorder: Recorder | None, conn: Any, query: Any, params: Any, **extra: Any) -> Iterator[None]:
    """Time the statement run inside the block and hand it to `recorder`, failed or not.

    Every wrapper below, sync or async, records through this one path."""
    start = time.perf_counter()
    failed = True
    try:
        yield
        failed = False
    finally:
        if recorder is not None:
            recorder.record(conn, query, params, start, time.perf_counter(), failed=failed, **extra)


def _sync_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        with _recorded(_active, self.connection, query, params):
            return original(self, query, params, *args, **kwargs)
    return execute


def _async_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def execute(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        with _recorded(_active, self.connection, query, params):
            return await original(self, query, params, *args, **kwargs)
    return execute


def _batch(params_seq: Any) -> tuple[Sequence[Any], Any]:
    """executemany accepts any iterable; materialise it to know the batch size."""
    batch = params_seq if isinstance(params_seq, Sequence) else list(params_seq)
    return batch, (batch[0] if batch else None)


def _sync_executemany(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def executemany(self: Any, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        if _active is None:
            return original(self, query, params_seq, *args, **kwargs)
        batch, first = _batch(params_seq)
        with _recorded(_active, self.connection, query, first, batch=len(batch)):
            return original(self, query, batch, *args, **kwargs)
    return executemany


def _async_executemany(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def executemany(self: Any, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        if _active is None:
            return await original(self, query, params_seq, *args, **kwargs)
        batch, first = _batch(params_seq)
        with _recorded(_active, self.connection, query, first, batch=len(batch)):
            return await original(self, query, batch, *args, **kwargs)
    return executemany


def _sync_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def stream(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        recorder = _active
        start = time.perf_counter()
        try:
            yield from original(self, query, params, *args, **kwargs)
        finally:
            if recorder is not None:
                recorder.record(self.connection, query, params, start, time.perf_counter())
    return stream


def _async_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def stream(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        recorder = _active
        start = time.perf_counter()
        try:
            async for row in original(self, query, params, *args, **kwargs):
                yield row
        finally:
            if recorder is not None:
                recorder.record(self.connection, query, params, start, time.perf_counter())
    return stream


def _sync_copy(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    @contextmanager
    def copy(self: Any, statement: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        recorder = _active
        start = time.perf_counter()
        try:
            with original(self, statement, params, *args, **kwargs) as copier:
                yield copier
        finally:
            if recorder is not None:
                recorder.record(self.connection, statement, params, start, time.perf_counter())
    return copy


def _async_copy(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    @asynccontextmanager
    async def copy(self: Any, statement: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        recorder = _active
        start = time.perf_counter()
        try:
            async with original(self, statement, params, *args, **kwargs) as copier:
                yield copier
        finally:
            if recorder is not None:
                recorder.record(self.connection, statement, params, start, time.perf_counter())
    return copy


def _exec_command(original: Callable[..., Any]) -> Callable[..., Any]:
    """psycopg's own path for BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE (sync and async
    connections share it: it is a generator their `wait` drives)."""

    @functools.wraps(original)
    def exec_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = _active
        if recorder is None:
            return (yield from original(self, command, *args, **kwargs))
        start = time.perf_counter()
        result = yield from original(self, command, *args, **kwargs)
        recorder.record(self, command, None, start, time.perf_counter(), control=True)
        return result
    return exec_command


def _targets() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    from psycopg import AsyncCursor, AsyncServerCursor, Cursor, ServerCursor
    from psycopg._connection_base import BaseConnection

    return [
        (Cursor, "execute", _sync_execute),
        (Cursor, "executemany", _sync_executemany),
        (Cursor, "stream", _sync_stream),
        (Cursor, "copy", _sync_copy),
        (ServerCursor, "execute", _sync_execute),
        (AsyncCursor, "execute", _async_execute),
        (AsyncCursor, "executemany", _async_executemany),
        (AsyncCursor, "stream", _async_stream),
        (AsyncCursor, "copy", _async_copy),
        (AsyncServerCursor, "execute", _async_execute),
        (BaseConnection, "_exec_command", _exec_command),
    ]


def install(root: str | os.PathLike[str] = "") -> None:
    """Wrap psycopg's methods once; `uninstall` puts the originals back. Call sites under `root`
    are shown relative to it."""
    global _root
    _root = os.path.join(os.fspath(root), "") if root else ""
    _display_name.clear()
    if _originals:
        return
    for owner, name, wrap in _targets():
        original = owner.__dict__[name]
        _originals.append((owner, name, original))
        setattr(owner, name, wrap(original))


def uninstall() -> None:
    activate(None)
    while _originals:
        owner, name, original = _originals.pop()
        setattr(owner, name, original)
