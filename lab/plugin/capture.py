"""Client-side capture of every statement the code under test sends, for the pytest plugin.

psycopg has no query hook, so the capture wraps the methods every cursor and connection class
inherits (`execute`, `executemany`, `stream`, `copy`, and the connection's internal command path
that sends BEGIN / COMMIT / ROLLBACK / SAVEPOINT); asyncpg is followed through its public query
logger (`pglab.lab.plugin.asyncpg_capture`). The code under test creates its connections, cursors
and pools as usual and changes nothing. The wrappers are installed once per session and cost one
global read per call while no test is recording; while a test records, each statement costs a
walk up the stack (to collect the user's frames that sent it) and two clock reads. Everything
that needs parsing (fingerprints, statement classes) is done after the test, once per distinct
text.

Transactions are followed with the driver's transaction status after each statement, per
connection: a transaction opens when the status leaves IDLE and closes when it returns to it, and
the time between two statements of an open transaction is time the client spent elsewhere while
the server held the transaction open.
"""

from __future__ import annotations

import importlib
import os
import site
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from psycopg import pq
from psycopg.conninfo import make_conninfo
from psycopg.sql import Composable

from pglab.lab.plugin.records import ConnectionInfo, Frame, Handle, Statement, Transaction

_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


class Driver(Protocol):
    """What the recorder asks of a driver's connection."""

    name: str

    def info(self, conn: Any) -> ConnectionInfo: ...

    def in_transaction(self, conn: Any) -> bool: ...


class _Psycopg:
    name = "psycopg"

    @staticmethod
    def info(conn: Any) -> ConnectionInfo:
        """How to reach the same database again (host, port, user, dbname, options, and the
        password that `get_parameters` leaves out), for the plan checks that run after the test."""
        info = conn.info
        params = info.get_parameters()
        if info.password:
            params["password"] = info.password
        return ConnectionInfo(dsn=make_conninfo(**params), dbname=info.dbname)

    @staticmethod
    def in_transaction(conn: Any) -> bool:
        return conn.pgconn.transaction_status in _IN_TRANSACTION


PSYCOPG = _Psycopg()


@dataclass
class Recorder:
    """Everything one test sent, in completion order, from any thread."""

    statements: list[Statement] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    connections: dict[int, ConnectionInfo] = field(default_factory=dict)
    handles: dict[int, Handle] = field(default_factory=dict)
    _open: dict[int, Transaction] = field(default_factory=dict)

    def record(self, conn: Any, sql: Any, params: Any, start: float, end: float, *,
               control: bool = False, batch: int = 1, failed: bool = False) -> None:
        """One psycopg statement, sent from the frames above the caller."""
        statement = Statement(_text(sql, conn), params is not None, params, call_chain(sys._getframe(1)),
                              start, end - start, id(conn), control, batch, failed)
        self.add(conn, PSYCOPG, statement, PSYCOPG.in_transaction(conn))

    def add(self, conn: Any, driver: Driver, statement: Statement, in_transaction: bool,
            info: ConnectionInfo | None = None) -> None:
        """Keep `statement` and follow its connection's transaction (status after the statement).
        `info` describes a connection the driver cannot describe from the connection alone."""
        key = statement.connection
        first_sight = key not in self.connections
        if first_sight:
            self.connections[key] = info or driver.info(conn)
            self.handles[key] = Handle(conn, driver.name)
        self.statements.append(statement)
        self._follow_transaction(statement, in_transaction, first_sight)

    def _follow_transaction(self, statement: Statement, in_transaction: bool, first_sight: bool) -> None:
        current = self._open.get(statement.connection)
        if current is None and not in_transaction:
            return  # autocommit, or between transactions: the common case, kept cheap
        end = statement.start + statement.duration
        site = statement.call_site
        if current is not None:
            gap = statement.start - current.last_end
            if gap > current.idle_gap:
                current.idle_gap, current.gap_from, current.gap_to = gap, current.last_site, site
            current.statements += 1
            current.last_end, current.last_site = end, site
            if not in_transaction:
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
            handle = self.handles.get(key)
            still_open = handle is not None and not is_closed(handle)
            current.end = now if still_open else current.last_end
            current.left_open = still_open
            if still_open and now - current.last_end > current.idle_gap:
                current.idle_gap, current.gap_from, current.gap_to = (
                    now - current.last_end, current.last_site, "<end of test>")
            self.transactions.append(current)
        self._open.clear()

    def release(self) -> None:
        """Forget the live connections once the checks are done with them."""
        self.handles.clear()

    def since(self, index: int) -> list[Statement]:
        return self.statements[index:]


def is_closed(handle: Handle) -> bool:
    conn = handle.conn
    closed = conn.is_closed() if handle.driver == "asyncpg" else conn.closed
    return bool(closed)


def _text(sql: Any, conn: Any) -> str:
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes | bytearray | memoryview):
        return bytes(sql).decode("utf-8", "replace")
    if isinstance(sql, Composable):
        return sql.as_string(conn)
    return str(sql)


# --- where a statement comes from -------------------------------------------------------------

CHAIN_DEPTH = 3  # user frames kept per statement, innermost first
_OWN_DIRECTORY = os.path.join(str(Path(__file__).parent), "")
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
    if filename.startswith("<") or filename.startswith(_OWN_DIRECTORY) or filename.startswith(_PREFIXES):
        return None
    if _root and filename.startswith(_root):
        return filename[len(_root):]
    return filename


def _stop_code() -> Any:
    """The frame above which no user code sends statements: pytest calling the test function. The
    walk stops there instead of climbing pytest's own stack."""
    from _pytest import python

    return python.pytest_pyfunc_call.__code__


_STOP = _stop_code()  # compared by identity: hashing a code object hashes its whole contents


def call_chain(frame: Any) -> tuple[Frame, ...]:
    """The user's frames from `frame` up (outside the standard library, installed packages and this
    plugin), innermost first, at most `CHAIN_DEPTH`: the line that sent the statement, the line
    that called that function, and so on, relative to the project root."""
    chain: list[Frame] = []
    while frame is not None:
        code = frame.f_code
        if code is _STOP:
            break
        filename = code.co_filename
        try:
            shown = _display_name[filename]
        except KeyError:
            shown = _display_name[filename] = _display(filename)
        if shown is not None:
            chain.append((shown, frame.f_lineno, code.co_name))
            if len(chain) == CHAIN_DEPTH:
                break
        frame = frame.f_back
    return tuple(chain)


# --- the wrappers -------------------------------------------------------------------------------

_active: Recorder | None = None
_originals: list[tuple[type, str, Any]] = []


def activate(recorder: Recorder | None) -> None:
    """Route statements to `recorder` (None stops recording)."""
    global _active
    _active = recorder


def install(root: str | os.PathLike[str] = "") -> None:
    """Wrap psycopg's methods once (asyncpg's with `follow_asyncpg`); `uninstall` puts the
    originals back. Call sites under `root` are shown relative to it."""
    global _root
    _root = os.path.join(os.fspath(root), "") if root else ""
    _display_name.clear()
    if _originals:
        return
    # By full name: a package attribute can outlive its module (pytester's in-process runs drop
    # the modules a run imported but not the attributes of packages that stay).
    psycopg_capture = importlib.import_module("pglab.lab.plugin.psycopg_capture")
    _wrap_all(psycopg_capture.targets())


def follow_asyncpg() -> None:
    """Wrap asyncpg too, once the code under test has imported it (checked before each test:
    importing asyncpg for suites that never use it would cost every run its import time)."""
    if "asyncpg" not in sys.modules or not _originals:
        return
    asyncpg_capture = importlib.import_module("pglab.lab.plugin.asyncpg_capture")
    _wrap_all([target for target in asyncpg_capture.targets()
               if not getattr(target[0].__dict__[target[1]], "pglab_wrapper", False)])


def _wrap_all(targets: list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]) -> None:
    for owner, name, wrap in targets:
        original = owner.__dict__[name]
        _originals.append((owner, name, original))
        setattr(owner, name, wrap(original))


def uninstall() -> None:
    activate(None)
    while _originals:
        owner, name, original = _originals.pop()
        setattr(owner, name, original)
