"""The wrappers around psycopg 3's methods that hand each statement to the active recorder
(`pglab.lab.plugin.capture`): every cursor's `execute`, `executemany`, `stream` and `copy`, sync
and async, and the connection's internal command path for BEGIN / COMMIT / SAVEPOINT."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from pglab.lab.plugin import capture
from pglab.lab.plugin.capture import Recorder


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
        with _recorded(capture._active, self.connection, query, params):
            return original(self, query, params, *args, **kwargs)
    return execute


def _async_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def execute(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        with _recorded(capture._active, self.connection, query, params):
            return await original(self, query, params, *args, **kwargs)
    return execute


def _batch(params_seq: Any) -> tuple[Sequence[Any], Any]:
    """executemany accepts any iterable; materialise it to know the batch size."""
    batch = params_seq if isinstance(params_seq, Sequence) else list(params_seq)
    return batch, (batch[0] if batch else None)


def _sync_executemany(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def executemany(self: Any, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        if capture._active is None:
            return original(self, query, params_seq, *args, **kwargs)
        batch, first = _batch(params_seq)
        with _recorded(capture._active, self.connection, query, first, batch=len(batch)):
            return original(self, query, batch, *args, **kwargs)
    return executemany


def _async_executemany(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def executemany(self: Any, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        if capture._active is None:
            return await original(self, query, params_seq, *args, **kwargs)
        batch, first = _batch(params_seq)
        with _recorded(capture._active, self.connection, query, first, batch=len(batch)):
            return await original(self, query, batch, *args, **kwargs)
    return executemany


def _sync_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def stream(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        recorder = capture._active
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
        recorder = capture._active
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
        recorder = capture._active
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
        recorder = capture._active
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
        recorder = capture._active
        if recorder is None:
            return (yield from original(self, command, *args, **kwargs))
        start = time.perf_counter()
        result = yield from original(self, command, *args, **kwargs)
        recorder.record(self, command, None, start, time.perf_counter(), control=True)
        return result
    return exec_command


def targets() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
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
