"""What one run of the service looks like: where the data is and which code paths run naive."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceConfig:
    dsn: str
    naive: frozenset[str] = field(default_factory=frozenset)  # ids whose naive path runs; all others run fixed
    pool_size: int = 10  # the bounded pool of the fixed paths
    pool_timeout: float = 5.0  # seconds a request waits for a pooled connection before a 503
    stream_chunks: int = 10  # the simulated model emits this many chunks...
    stream_interval: float = 0.2  # ...this many seconds apart
    tokenizer_delay: float = 0.01  # the simulated tokenizer call every posted message makes
    statement_timeout_ms: int = 15_000  # no naive query outlives its run by more than this

    def is_naive(self, entry_id: str) -> bool:
        return entry_id in self.naive
