"""What one run of the service looks like: where the data is, which code paths run naive, and
which path modules a run replaces with a file of its own (a student's attempt, a broken fix)."""

from __future__ import annotations

from dataclasses import dataclass, field

APPLICATION_NAME = "pglab-service"  # the prefix; each lab run adds its own tag

DSN_VARIABLE = "PGLAB_SERVICE_DSN"
TOKEN_VARIABLE = "PGLAB_SERVICE_TOKEN"  # in the environment, like the DSN: a command line is public


@dataclass(frozen=True)
class ServiceConfig:
    dsn: str
    naive: frozenset[str] = field(default_factory=frozenset)  # ids whose naive path runs; all others run fixed
    overrides: tuple[tuple[str, str], ...] = ()  # (id, file): that file's naive/fixed replace the module's
    application_name: str = APPLICATION_NAME  # what pg_stat_activity shows for the service's sessions
    pool_size: int = 10  # the bounded pool of the fixed paths
    pool_timeout: float = 5.0  # seconds a request waits for a pooled connection before a 503
    stream_chunks: int = 10  # the simulated model emits this many chunks...
    stream_interval: float = 0.2  # ...this many seconds apart
    tokenizer_delay: float = 0.01  # the simulated tokenizer call every posted message makes
    control_token: str = ""  # POST /_lab/fix needs it; empty: no operator may ship fixes
    statement_timeout_ms: int = 15_000  # without a `session` path: no naive query outlives its run by more

    def is_naive(self, entry_id: str) -> bool:
        return entry_id in self.naive


@dataclass(frozen=True)
class SessionSettings:
    """What each of the service's connections starts with, and how long a request waits for one
    from the pool. A timeout of 0 is no timeout, as in Postgres."""

    statement_timeout_ms: int = 0
    lock_timeout_ms: int = 0
    idle_in_transaction_ms: int = 0
    acquire_timeout_s: float = 30.0  # psycopg_pool's default
    callout_idle_ms: int = 0  # set (SET LOCAL) by a transaction that waits on a call out of the database

    def options(self) -> str:
        """libpq `options` for the server-side timeouts that are set (none when all are 0)."""
        settings = (("statement_timeout", self.statement_timeout_ms), ("lock_timeout", self.lock_timeout_ms),
                    ("idle_in_transaction_session_timeout", self.idle_in_transaction_ms))
        return " ".join(f"-c {name}={value}" for name, value in settings if value)
