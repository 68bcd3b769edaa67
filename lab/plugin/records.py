"""What the capture keeps of a test's statements and transactions: plain data, no driver imports,
so the checks (and the detectors' hooks over captured statements) can read it without pulling in
psycopg or asyncpg."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# One frame of the user's code: (file shown relative to the project root, line, function).
Frame = tuple[str, int, str]


def site_of(frame: Frame) -> str:
    return f"{frame[0]}:{frame[1]}"


def chain_text(chain: tuple[Frame, ...]) -> str:
    """`repo.py:12 (in get_author) <- service.py:30 (in page)`: where the statement was sent, then
    who called that, so a loop in a caller is as visible as the helper that sent the statement."""
    return " <- ".join(f"{site_of(frame)} (in {frame[2]})" for frame in chain)


@dataclass(slots=True)
class Statement:
    """One statement as the client sent it. `chain` is the user's frames that sent it, innermost
    first, a few deep; `control` marks the commands drivers send on their own (BEGIN, COMMIT,
    ROLLBACK, SAVEPOINT, RELEASE, a named cursor's FETCH and CLOSE), which no budget counts;
    `batch` is the size of an executemany."""

    sql: str
    has_params: bool
    params: Any
    chain: tuple[Frame, ...]
    start: float
    duration: float
    connection: int
    control: bool = False
    batch: int = 1
    failed: bool = False
    source: str = "client"

    @property
    def path(self) -> str | None:
        return self.chain[0][0] if self.chain else None

    @property
    def line(self) -> int | None:
        return self.chain[0][1] if self.chain else None

    @property
    def call_site(self) -> str:
        if self.source == "server":
            return "another process (pg_stat_statements)"
        return site_of(self.chain[0]) if self.chain else "<library code>"

    @property
    def call_chain(self) -> str:
        if self.source == "server":
            return self.call_site
        return chain_text(self.chain) if self.chain else "<library code>"


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

    @property
    def call_site(self) -> str:
        return f"{self.path}:{self.line}" if self.path else "<library code>"


@dataclass
class ConnectionInfo:
    """How to reach a connection's database again, and which driver it came from."""

    dsn: str
    dbname: str
    driver: str = "psycopg"


@dataclass
class Handle:
    """A live connection the test used, kept until the checks ran: plans of statements whose data
    only that connection's open transaction can see are read on it."""

    conn: Any
    driver: str
    extra: dict[str, Any] = field(default_factory=dict)
