"""Client-side capture for asyncpg, through its public query logger (`Connection.add_query_logger`).

asyncpg reports each statement it ran (text, arguments, elapsed time, exception) to the loggers
of its connection, but it calls them later, from the event loop (`call_soon`), when the stack that
sent the statement is gone. So the public query methods are wrapped just enough to know the
statement's origin: on entry the wrapper notes the user's frames and the recorder in a context
variable, and attaches the logger to the connection the first time it sees it; asyncio copies the
context into the logger's call, where the statement is recorded. Statements asyncpg sends outside
these methods (prepared statements, cursors) are not seen: pg_stat_statements on `pglab_db`
(`--pglab-server-capture`) counts them without a call site.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asyncpg.connection import Connection
from psycopg.conninfo import make_conninfo

from pglab.lab.plugin import capture
from pglab.lab.plugin.records import ConnectionInfo, Frame, Statement


@dataclass(slots=True)
class _Call:
    """One call of a wrapped method, as the logger needs it."""

    recorder: capture.Recorder
    conn: Any
    chain: tuple[Frame, ...]
    batch: int
    control: bool
    in_transaction: bool = False


_call: ContextVar[_Call | None] = ContextVar("pglab_asyncpg_call", default=None)
_listening: weakref.WeakSet[Any] = weakref.WeakSet()
_RESET = Connection.reset.__code__


class _Asyncpg:
    name = "asyncpg"

    @staticmethod
    def info(conn: Any) -> ConnectionInfo:
        raise AssertionError("asyncpg connections are described from their log record")

    @staticmethod
    def in_transaction(conn: Any) -> bool:
        return bool(conn.is_in_transaction())


ASYNCPG = _Asyncpg()


def _describe(record: Any) -> ConnectionInfo:
    """A libpq DSN for the database an asyncpg connection reached (for the plan checks)."""
    params = record.conn_params
    address = record.conn_addr
    if isinstance(address, str):  # a unix socket: /dir/.s.PGSQL.5432
        host, port = os.path.dirname(address), address.rsplit(".", 1)[-1]
    else:
        host, port = address[0], str(address[1])
    values = {"host": host, "port": port, "user": params.user, "dbname": params.database}
    if params.password:
        values["password"] = params.password
    return ConnectionInfo(dsn=make_conninfo(**values), dbname=params.database, driver="asyncpg")


def _log(record: Any) -> None:
    """asyncpg's query logger: record the statement in the recorder its call noted."""
    call = _call.get()
    if call is None:
        return  # a statement sent while no test records, or outside the wrapped methods
    key = id(call.conn)
    info = None if key in call.recorder.connections else _describe(record)
    start = time.perf_counter() - record.elapsed
    statement = Statement(record.query, False, tuple(record.args or ()), call.chain, start, record.elapsed, key,
                          control=call.control, batch=call.batch, failed=record.exception is not None)
    call.recorder.add(call.conn, ASYNCPG, statement, call.in_transaction, info)


def _listen(conn: Any) -> None:
    if conn not in _listening:
        conn.add_query_logger(_log)
        _listening.add(conn)


def _wrap(original: Callable[..., Any], many: bool = False) -> Callable[..., Any]:
    @functools.wraps(original)
    async def method(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = capture._active
        if recorder is None or _call.get() is not None:
            return await original(self, query, *args, **kwargs)
        _listen(self)
        batch = len(args[0]) if many and args and isinstance(args[0], Sequence) else 1
        caller = sys._getframe(1)
        # A pool's own reset of a connection it takes back is housekeeping, like psycopg's BEGIN.
        control = caller.f_code is _RESET
        call = _Call(recorder, self, capture.call_chain(caller), batch, control)
        token = _call.set(call)
        try:
            return await original(self, query, *args, **kwargs)
        finally:
            call.in_transaction = not self.is_closed() and self.is_in_transaction()
            _call.reset(token)
    method.pglab_wrapper = True  # type: ignore[attr-defined]
    return method


def targets() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    """The methods `capture.install` wraps: every public way to run a statement on a connection
    (pools hand out proxies that forward to these)."""
    plain = [(Connection, name, _wrap) for name in ("execute", "fetch", "fetchval", "fetchrow", "fetchmany")]
    return [*plain, (Connection, "executemany", functools.partial(_wrap, many=True))]
