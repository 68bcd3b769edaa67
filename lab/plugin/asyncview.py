"""A blocking view of a test's psycopg `AsyncConnection`, for the plan checks.

The plan checks run after the test, from pytest's synchronous hook, and read plans with the sync
psycopg API (`conn.execute(...).fetchone()`, `conn.transaction()`, `conn.cursor(row_factory=...)`).
A test that holds an open transaction on an async connection (the rolled-back fixture written with
`psycopg.AsyncConnection`) has rows only that connection can see, so its plans must be read on it.
This view offers those few methods and runs each on the connection itself, through its public
async API, on a private event loop in a thread of its own: the test's loop may be closed, stopped
or running elsewhere by then, and an AsyncConnection is not tied to the loop that opened it. The
connection's own lock still serialises every statement, as for any other task.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row

T = TypeVar("T")

# The plan code picks its cursors by their sync class (raw `$n` placeholders, or psycopg's `%s`).
_ASYNC_CURSOR: dict[type, type] = {psycopg.RawCursor: psycopg.AsyncRawCursor, psycopg.Cursor: psycopg.AsyncCursor}


class _Loop:
    """An event loop running in a daemon thread until `close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pglab-plans", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class _Cursor:
    def __init__(self, cursor: Any, loop: _Loop) -> None:
        self._cursor = cursor
        self._loop = loop

    def execute(self, query: Any, params: Any = None) -> _Cursor:
        self._loop.run(self._cursor.execute(query, params))
        return self

    def fetchone(self) -> Any:
        return self._loop.run(self._cursor.fetchone())

    def fetchall(self) -> list[Any]:
        return self._loop.run(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.run(self._cursor.close())


class SyncView:
    """The sync methods the plan code calls, run on an AsyncConnection. `cursor_factory` and
    `row_factory` name what a sync connection would use, as the plan code sets them."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], loop: _Loop) -> None:
        self._conn = conn
        self._loop = loop
        self.cursor_factory: type = psycopg.RawCursor
        self.row_factory: Any = tuple_row

    def cursor(self, row_factory: Any = None) -> _Cursor:
        cursor_class = _ASYNC_CURSOR[self.cursor_factory]
        return _Cursor(cursor_class(self._conn, row_factory=row_factory or self.row_factory), self._loop)

    def execute(self, query: Any, params: Any = None) -> _Cursor:
        return self.cursor().execute(query, params)

    @contextmanager
    def transaction(self, savepoint_name: str | None = None, force_rollback: bool = False) -> Iterator[None]:
        """The connection's own `transaction()` block (a savepoint inside its open transaction)."""
        block = self._conn.transaction(savepoint_name, force_rollback)
        self._loop.run(block.__aenter__())
        try:
            yield
        except BaseException as error:
            if not self._loop.run(block.__aexit__(type(error), error, error.__traceback__)):
                raise
        else:
            self._loop.run(block.__aexit__(None, None, None))


@contextmanager
def sync_view(conn: psycopg.AsyncConnection[Any]) -> Iterator[SyncView]:
    loop = _Loop()
    try:
        yield SyncView(conn, loop)
    finally:
        loop.close()
