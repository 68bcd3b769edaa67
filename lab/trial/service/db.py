"""The service's access to Postgres: the pool (when the run uses one), and the counters of
connections that could not be had, which the lab's "no refused connections" invariant reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pglab.lab.trial.service import paths
from pglab.lab.trial.service.config import ServiceConfig

APPLICATION_NAME = "pglab-service"
TOO_MANY_CONNECTIONS = "53300"


class Unavailable(Exception):
    """No connection could be had: the request is answered 503."""


class Database:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.pool: AsyncConnectionPool[Any] | None = None
        self.refused = 0  # connection attempts the server turned away
        self.pool_timeouts = 0  # requests that waited longer than the pool timeout

    async def open(self) -> None:
        if self.config.is_naive("pool_exhaustion"):
            return  # the naive path connects per request and has no pool
        self.pool = AsyncConnectionPool(
            self.config.dsn, min_size=self.config.pool_size, max_size=self.config.pool_size,
            timeout=self.config.pool_timeout, open=False,
            kwargs=self._connect_options())
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A connection for one request, got the way this run's pool_exhaustion path says."""
        return paths.choose("pool_exhaustion", self.config)(self)

    def _connect_options(self) -> dict[str, Any]:
        """Tagged for pg_stat_activity, and with a statement timeout added to the DSN's own options
        (the lab's search_path is there), so a naive query never outlives its run for long."""
        options = conninfo_to_dict(self.config.dsn).get("options") or ""
        return {"autocommit": True, "application_name": APPLICATION_NAME,
                "options": f"{options} -c statement_timeout={self.config.statement_timeout_ms}".strip()}

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        """A new connection of its own; a refusal by the server is counted and becomes a 503."""
        try:
            return await psycopg.AsyncConnection.connect(self.config.dsn, **self._connect_options())
        except psycopg.OperationalError as error:
            if TOO_MANY_CONNECTIONS in str(error) or "too many clients" in str(error):
                self.refused += 1
                raise Unavailable("the database refused the connection: too many clients") from None
            raise

    @asynccontextmanager
    async def pooled(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                yield conn
        except PoolTimeout:
            self.pool_timeouts += 1
            raise Unavailable(f"no pooled connection within {self.config.pool_timeout} s") from None

    def stats(self) -> dict[str, int]:
        pool_errors = self.pool.get_stats().get("connections_errors", 0) if self.pool else 0
        return {"refused_connections": self.refused + pool_errors, "pool_timeouts": self.pool_timeouts}
