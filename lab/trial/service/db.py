"""The service's access to Postgres: a pool (opened when a path first asks for it), new
connections for the paths that open their own, and the counters of connections that could not be
had, which the lab's "no refused connections" invariant reads.

What every connection starts with (statement, lock and idle-in-transaction timeouts) and how long
a request may wait for a pooled connection are not decided here: they are the business of the
path that declares `ROLE = "session"` (its naive side sets none, its fixed side, in force on every
other entry's run, sets them). With no such path, a plain statement timeout keeps a naive query
from outliving its run for long."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pglab.lab.trial.service import paths
from pglab.lab.trial.service.config import ServiceConfig, SessionSettings

TOO_MANY_CONNECTIONS = "53300"


class Unavailable(Exception):
    """No connection could be had: the request is answered 503."""


class Database:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.pool: AsyncConnectionPool[Any] | None = None
        self._opening = asyncio.Lock()
        self.refused = 0  # connection attempts the server turned away
        self.pool_timeouts = 0  # requests that waited longer than the pool timeout
        self.settings = session_settings(config)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def renew(self, settings: SessionSettings) -> None:
        """Other session settings from now on: the pool is replaced, since its connections carry
        the old ones, and the old pool closes each of its connections as its request gives it back."""
        async with self._opening:
            old, self.pool, self.settings = self.pool, None, settings
        if old is not None:
            await old.close()

    def _connect_options(self) -> dict[str, Any]:
        """Tagged for pg_stat_activity with this run's name (so the lab ends only its own sessions),
        with the session settings added to the DSN's own options (the lab's search_path is there)."""
        options = conninfo_to_dict(self.config.dsn).get("options") or ""
        return {"autocommit": True, "application_name": self.config.application_name,
                "options": f"{options} {self.settings.options()}".strip()}

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        """A new connection of its own; a refusal by the server is counted and becomes a 503."""
        try:
            return await psycopg.AsyncConnection.connect(self.config.dsn, **self._connect_options())
        except psycopg.OperationalError as error:
            if TOO_MANY_CONNECTIONS in str(error) or "too many clients" in str(error):
                self.refused += 1
                raise Unavailable("the database refused the connection: too many clients") from None
            raise

    async def _pool(self) -> AsyncConnectionPool[Any]:
        async with self._opening:
            if self.pool is None:
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self.config.dsn, min_size=self.config.pool_size, max_size=self.config.pool_size,
                    timeout=self.settings.acquire_timeout_s, open=False, kwargs=self._connect_options())
                await pool.open(wait=True, timeout=30)
                self.pool = pool
        return self.pool

    @asynccontextmanager
    async def pooled(self, timeout: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection, waited for at most `timeout` seconds (default: the pool's own)."""
        pool = await self._pool()
        try:
            async with pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout:
            self.pool_timeouts += 1
            waited = timeout if timeout is not None else self.settings.acquire_timeout_s
            raise Unavailable(f"no pooled connection within {waited:g} s") from None

    def stats(self) -> dict[str, int]:
        pool_errors = self.pool.get_stats().get("connections_errors", 0) if self.pool else 0
        return {"refused_connections": self.refused + pool_errors, "pool_timeouts": self.pool_timeouts}


def session_settings(config: ServiceConfig) -> SessionSettings:
    """What the `session` path says this run's connections start with (its naive or fixed side,
    or a file standing in for it); without one, the configuration's own statement timeout."""
    owner = paths.by_role().get("session")
    if owner is None:
        return SessionSettings(statement_timeout_ms=config.statement_timeout_ms, acquire_timeout_s=config.pool_timeout)
    source = dict(config.overrides).get(owner)
    module = paths.load_file(owner, source) if source else paths.module(owner)
    chosen: SessionSettings = (module.naive if config.is_naive(owner) else module.fixed)(config)
    return chosen
