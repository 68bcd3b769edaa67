"""pglab's pytest plugin: a new N+1, an unindexed scan of a big table or a transaction left open
fails the test that introduced it, with the line of code that sent the statement.

Installed with pglab through the `pytest11` entry point, so it is loaded by every pytest run in the
environment; it stays inactive (no capture, no hooks beyond option parsing) until enabled with
`--pglab` or `pglab = true` in the ini file. Importing this module therefore imports nothing but
pytest: psycopg, pglast and the checks load only when the plugin is switched on or a fixture runs.

Per test it captures what the code sends through psycopg 3 (`pglab.lab.plugin.capture`), optionally
what the server saw from other processes (pg_stat_statements), and runs the checks of
`pglab.lab.plugin.querychecks`, configured per session (ini / command line) and per test with
`@pytest.mark.pglab(max_queries=..., n_plus_one=..., allow=[...])`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pglab.lab.core.findings import Finding
    from pglab.lab.plugin.capture import Recorder, Statement, Transaction
    from pglab.lab.plugin.querychecks import Settings
    from pglab.lab.postgres.testdbs import TestServer

MARKER = (
    "pglab(max_queries=None, max_selects=None, max_writes=None, n_plus_one=5, plans=True, plan_scale=1.0, "
    "txn_max_seconds=5.0, txn_idle_seconds=0.5, allow=[]): per-test settings of pglab's query checks"
)
# (name, type, help). Each is an ini key `pglab_<name>` and a flag `--pglab-<name>`; the flag wins.
_SETTINGS: tuple[tuple[str, type, str], ...] = (
    ("n_plus_one", int, "fail when one statement shape runs this often from one call site (0: off; default 5)"),
    ("max_queries", int, "fail a test that sends more statements than this (BEGIN/COMMIT/SAVEPOINT/SET not counted)"),
    ("max_selects", int, "fail a test that sends more SELECTs than this"),
    ("max_writes", int, "fail a test that sends more INSERT/UPDATE/DELETE/MERGE/COPY FROM than this"),
    ("plans", bool, "EXPLAIN each distinct statement and apply the plan rules (default true)"),
    ("plan_scale", float, "evaluate plans with planner row counts multiplied by this (default 1: real counts)"),
    ("txn_max_seconds", float, "fail a transaction held open longer than this (0: off; default 5.0)"),
    ("txn_idle_seconds", float, "fail a transaction idle between statements longer than this (0: off; default 0.5)"),
)
_DB_KEY = pytest.StashKey[str]()
_RECORDER_KEY = pytest.StashKey["Recorder"]()
_SESSION_KEY = pytest.StashKey["PglabSession"]()
_SETTINGS_KEY = pytest.StashKey["Settings"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pglab", "pglab: PostgreSQL anti-pattern checks per test")
    group.addoption("--pglab", action="store_true", default=False, help="enable pglab's query checks")
    parser.addini("pglab", type="bool", default=False, help="enable pglab's query checks")
    for name, kind, text in _SETTINGS:
        flag = "--pglab-" + name.replace("_", "-")
        if kind is bool:
            group.addoption(flag, default=None, choices=("on", "off"), help=text)
        else:
            group.addoption(flag, default=None, type=kind, metavar="N", help=text)
        parser.addini(f"pglab_{name}", type="string", default="", help=text)
    group.addoption("--pglab-allow", action="append", default=[], metavar="ITEM",
                    help="allow a catalogue id or code, a check name or a fingerprint everywhere (repeatable)")
    parser.addini("pglab_allow", type="linelist", default=[], help="allow-list for every test")
    group.addoption("--pglab-server-capture", action="store_true", default=False,
                    help="also count statements other processes sent to pglab_db (pg_stat_statements)")
    parser.addini("pglab_server_capture", type="bool", default=False, help="see --pglab-server-capture")
    group.addoption("--pglab-report", default=None, metavar="FILE.json", help="write the session's findings as JSON")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    if config.getoption("pglab") or config.getini("pglab"):
        session = PglabSession(config, _session_settings(config))
        config.stash[_SESSION_KEY] = session
        config.pluginmanager.register(session, "pglab-session")


def _session_settings(config: pytest.Config) -> Settings:
    from pglab.lab.plugin.querychecks import Settings

    values: dict[str, Any] = {}
    for name, kind, _ in _SETTINGS:
        raw = config.getoption("pglab_" + name)
        source = f"--pglab-{name.replace('_', '-')}"
        if raw is None:
            raw, source = config.getini(f"pglab_{name}").strip() or None, f"pglab_{name}"
        if raw is None:
            continue
        values[name] = _parse(raw, kind, source)
    values["allow"] = tuple(config.getini("pglab_allow")) + tuple(config.getoption("pglab_allow"))
    return Settings().override(values)


def _parse(raw: Any, kind: type, source: str) -> Any:
    if not isinstance(raw, str):
        return raw
    if kind is bool:
        if raw.lower() in ("on", "true", "yes", "1"):
            return True
        if raw.lower() in ("off", "false", "no", "0"):
            return False
        raise pytest.UsageError(f"{source}: expected on/off, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise pytest.UsageError(f"{source}: expected {kind.__name__}, got {raw!r}") from None


@dataclass
class TestRecord:
    """What the report keeps of one test."""

    __test__ = False
    nodeid: str
    statements: int
    selects: int
    writes: int
    transactions: int
    seconds_in_database: float
    plans_explained: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    allowed: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PglabSession:
    """The enabled plugin: capture around each test's call, checks after it, the report at the end."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        import pglab.lab.plugin.capture as capture

        self.config = config
        self.settings = settings
        self.server_capture = bool(config.getoption("pglab_server_capture") or config.getini("pglab_server_capture"))
        self.records: list[TestRecord] = []
        self.calls: dict[str, Counter[str]] = defaultdict(Counter)  # fingerprint -> test -> calls
        self.texts: dict[str, str] = {}
        self.notes: set[str] = set()
        capture.install(config.rootpath)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        import pglab.lab.plugin.capture as capture

        capture.uninstall()

    def settings_for(self, item: pytest.Item) -> Settings:
        settings = self.settings
        for marker in reversed(list(item.iter_markers("pglab"))):
            if marker.args:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.pglab takes keyword arguments only")
            try:
                settings = settings.override(marker.kwargs)
            except (ValueError, TypeError) as error:
                raise pytest.UsageError(f"{item.nodeid}: {error}") from None
        return settings

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Read every marker up front, so a typo in one stops the run before any test runs."""
        for item in items:
            item.stash[_SETTINGS_KEY] = self.settings_for(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        import pglab.lab.plugin.capture as capture

        settings = item.stash.get(_SETTINGS_KEY, None) or self.settings_for(item)
        recorder = recorder_of(item)
        database = item.stash.get(_DB_KEY, None)
        before = self._server_snapshot(database) if self.server_capture and database else None
        capture.activate(recorder)
        try:
            result = yield
        finally:
            capture.activate(None)
            recorder.finish()
        statements = list(recorder.statements)
        if before is not None and database is not None:
            statements += self._server_statements(database, before, recorder)
        findings = self._check(item.nodeid, statements, recorder, settings, database)
        if findings:
            from pglab.lab.plugin.querychecks import describe

            pytest.fail(describe(findings), pytrace=False)
        return result

    def _check(self, nodeid: str, statements: list[Statement], recorder: Recorder, settings: Settings,
               database: str | None) -> list[Finding]:
        import pglab.lab.plugin.querychecks as querychecks

        found = (querychecks.n_plus_one(statements, settings) + querychecks.budget(statements, settings)
                 + querychecks.transactions(recorder.transactions, settings))
        notes: list[str] = []
        explained = 0
        if settings.plans:
            dsn_of = {key: info.dsn for key, info in recorder.connections.items()}
            if database:
                dsn_of[SERVER_CONNECTION] = database
            outcome = querychecks.plan_checks(statements, dsn_of, settings)
            found += outcome.findings
            notes += outcome.skipped
            explained = outcome.explained
        failing = [f for f in found if not querychecks.allowed(f, settings.allow)]
        passing = [f for f in found if querychecks.allowed(f, settings.allow)]
        self._remember(nodeid, statements, recorder, failing, passing, notes, explained)
        return failing

    def _remember(self, nodeid: str, statements: list[Statement], recorder: Recorder, failing: list[Finding],
                  passing: list[Finding], notes: list[str], explained: int) -> None:
        from pglab.lab.plugin.querychecks import counted, shape_of

        kinds: Counter[str] = Counter()
        for statement in statements:
            if not counted(statement):
                continue
            shape = shape_of(statement.sql, statement.has_params)
            calls = statement.batch if statement.source == "server" else 1
            kinds[shape.statement_class] += calls
            self.calls[shape.fingerprint][nodeid] += calls
            self.texts.setdefault(shape.fingerprint, statement.sql)
        self.records.append(TestRecord(
            nodeid=nodeid, statements=sum(kinds.values()), selects=kinds["select"], writes=kinds["write"],
            transactions=len(recorder.transactions),
            seconds_in_database=round(sum(s.duration for s in statements), 4), plans_explained=explained,
            findings=[f.as_json() for f in failing], allowed=[f.as_json() for f in passing], notes=notes,
        ))

    # --- the second source: pg_stat_statements ----------------------------------------------

    def _server_snapshot(self, dsn: str) -> dict[str, tuple[str, int]] | None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                rows = conn.execute(_STATEMENTS_SQL).fetchall()
            except psycopg.Error as error:
                self.notes.add(f"server capture off: {str(error).strip().splitlines()[0]}")
                return None
        return {str(queryid): (query, int(calls)) for queryid, query, calls in rows}

    def _server_statements(self, dsn: str, before: dict[str, tuple[str, int]], recorder: Recorder
                           ) -> list[Statement]:
        """What the server ran in the test's database beyond what this process sent: the calls
        pg_stat_statements counted during the test, minus the client's own, per fingerprint."""
        from pglab.lab.plugin.capture import Statement
        from pglab.lab.plugin.querychecks import shape_of

        after = self._server_snapshot(dsn) or {}
        server: Counter[str] = Counter()
        texts: dict[str, str] = {}
        for queryid, (query, calls) in after.items():
            delta = calls - before.get(queryid, ("", 0))[1]
            if delta > 0:
                fingerprint = shape_of(query, False).fingerprint
                server[fingerprint] += delta
                texts.setdefault(fingerprint, query)
        dbname = dsn_dbname(dsn)
        for statement in recorder.statements:
            if recorder.connections[statement.connection].dbname == dbname:
                server[shape_of(statement.sql, statement.has_params).fingerprint] -= statement.batch
        return [Statement(sql=texts[fp], has_params=False, params=None, path=None, line=None, start=0.0,
                          duration=0.0, connection=SERVER_CONNECTION, batch=calls, source="server")
                for fp, calls in server.items() if calls > 0]

    # --- the report -----------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pglab.lab.core.sql import short
        from pglab.lab.plugin.querychecks import top_fingerprints

        write = terminalreporter.write_line
        terminalreporter.section("pglab")
        flagged = [r for r in self.records if r.findings]
        total = sum(r.statements for r in self.records)
        explained = sum(r.plans_explained for r in self.records)
        write(f"{len(self.records)} tests checked, {total} statements captured, {explained} plans read, "
              f"{len(flagged)} tests flagged")
        for record in flagged:
            for finding in record.findings:
                where = f"{finding.get('path')}:{finding.get('line')}" if finding.get("path") else ""
                write(f"  {record.nodeid}: {finding.get('code', '')} {finding['id']} {where}")
        top = [row for row in top_fingerprints(self.calls, self.texts, limit=5) if row["max_in_one_test"] > 1]
        if top:
            write("most repeated statements (calls, tests, most in one test):")
            for row in top:
                write(f"  {row['calls']:>6} {row['tests']:>4} {row['max_in_one_test']:>5}  {short(row['sql'], 90)}")
        unplanned = sum(1 for r in self.records if r.notes)
        if unplanned:
            write(f"note: {unplanned} test{'s' if unplanned != 1 else ''} had statements pglab could not EXPLAIN "
                  "(reasons in --pglab-report)")
        for note in sorted(self.notes):
            write(f"note: {note}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = self.config.getoption("pglab_report")
        if not target:
            return
        from pglab.lab.plugin.querychecks import top_fingerprints

        report = {
            "settings": {**asdict(self.settings), "allow": list(self.settings.allow),
                         "server_capture": self.server_capture},
            "summary": {"tests": len(self.records), "flagged": sum(1 for r in self.records if r.findings),
                        "statements": sum(r.statements for r in self.records)},
            "tests": [asdict(record) for record in self.records],
            "top_fingerprints": top_fingerprints(self.calls, self.texts, limit=20),
            "notes": sorted(self.notes),
        }
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


SERVER_CONNECTION = -1  # the "connection" of statements pg_stat_statements saw from elsewhere
_STATEMENTS_SQL = """
SELECT queryid, query, calls FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
  AND query NOT LIKE '%pg_stat_statements%'
"""


def dsn_dbname(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(dsn).get("dbname", ""))


def recorder_of(item: pytest.Item) -> Recorder:
    from pglab.lab.plugin.capture import Recorder

    return item.stash.setdefault(_RECORDER_KEY, Recorder())


def _enabled_session(request: pytest.FixtureRequest) -> PglabSession:
    session = request.config.stash.get(_SESSION_KEY, None)
    if session is None:
        pytest.fail("the pglab plugin is not enabled: run pytest with --pglab or set `pglab = true` in the ini file",
                    pytrace=False)
    return session


# --- fixtures -------------------------------------------------------------------------------------


class QueryLog:
    """The statements the current test sent so far (live: it grows as the test runs), from the
    `start`-th on. Iterating gives the counted ones: psycopg's BEGIN/COMMIT/SAVEPOINT and SET are
    left out."""

    def __init__(self, recorder: Recorder, start: int = 0) -> None:
        self._recorder = recorder
        self._start = start

    @property
    def all(self) -> list[Statement]:
        return self._recorder.since(self._start)

    @property
    def counted(self) -> list[Statement]:
        from pglab.lab.plugin.querychecks import counted

        return [s for s in self.all if counted(s)]

    def of_class(self, statement_class: str) -> list[Statement]:
        """Counted statements of one class: "select", "write" or "other" (DDL, SHOW...)."""
        from pglab.lab.plugin.querychecks import shape_of

        return [s for s in self.counted if shape_of(s.sql, s.has_params).statement_class == statement_class]

    @property
    def selects(self) -> list[Statement]:
        return self.of_class("select")

    @property
    def writes(self) -> list[Statement]:
        return self.of_class("write")

    def matching(self, fragment: str) -> list[Statement]:
        return [s for s in self.counted if fragment.lower() in s.sql.lower()]

    @property
    def transactions(self) -> list[Transaction]:
        """Transactions finished so far (all of them once the test is over)."""
        return list(self._recorder.transactions)

    def __len__(self) -> int:
        return len(self.counted)

    def __iter__(self) -> Iterator[Statement]:
        return iter(self.counted)

    def __getitem__(self, index: int) -> Statement:
        return self.counted[index]


class Pglab:
    """The `pglab` fixture: assertions over the statements a block of the test sends."""

    def __init__(self, recorder: Recorder) -> None:
        self.queries = QueryLog(recorder)
        self._recorder = recorder

    @contextmanager
    def assert_max_queries(self, limit: int, statement_class: str | None = None) -> Iterator[QueryLog]:
        """Fail when the block sends more than `limit` counted statements (of `statement_class`,
        "select" or "write", when given). Yields the log of the block's statements."""
        from pglab.lab.core.sql import short

        block = QueryLog(self._recorder, start=len(self._recorder.statements))
        yield block
        sent = block.of_class(statement_class) if statement_class else block.counted
        if len(sent) > limit:
            label = f"{statement_class} statements" if statement_class else "statements"
            listing = "\n".join(f"  {s.call_site}  {short(s.sql, 120)}" for s in sent[:20])
            raise AssertionError(f"expected at most {limit} {label}, the block sent {len(sent)}:\n{listing}")

    def no_queries(self, statement_class: str | None = None) -> Any:
        """Fail when the block sends any counted statement (a cache hit must not reach the database)."""
        return self.assert_max_queries(0, statement_class)


@pytest.fixture
def pglab(request: pytest.FixtureRequest) -> Pglab:
    """`pglab.assert_max_queries(n)`, `pglab.no_queries()`, `pglab.queries`."""
    _enabled_session(request)
    return Pglab(recorder_of(request.node))


@pytest.fixture
def pglab_queries(request: pytest.FixtureRequest) -> QueryLog:
    """The statements the test sends through psycopg, for custom assertions."""
    _enabled_session(request)
    return QueryLog(recorder_of(request.node))


@pytest.fixture(scope="session")
def pglab_server() -> Iterator[TestServer]:
    """pglab's embedded PostgreSQL, or the server `PGLAB_TEST_DSN` names."""
    from pglab.lab.postgres.testdbs import open_test_server

    with open_test_server() as server:
        yield server


@pytest.fixture(scope="session")
def pglab_seed() -> Callable[[str], None] | None:
    """Override in a conftest to seed the template once per session: return a function that
    receives the template's DSN (create the schema, load reference data)."""
    return None


@pytest.fixture(scope="session")
def pglab_template(request: pytest.FixtureRequest, pglab_server: TestServer,
                   pglab_seed: Callable[[str], None] | None) -> Iterator[str]:
    from pglab.lab.postgres.testdbs import template_database

    session = request.config.stash.get(_SESSION_KEY, None)

    def seed(dsn: str) -> None:
        if session is not None and session.server_capture:
            _enable_statement_stats(dsn, session)
        if pglab_seed is not None:
            pglab_seed(dsn)
            _analyze(dsn)

    with template_database(pglab_server, seed) as name:
        yield name


def _analyze(dsn: str) -> None:
    """Planner statistics for the seeded data, gathered once in the template: every clone starts
    with them, so the plan checks plan as production would without analysing per test."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")


def _enable_statement_stats(dsn: str, session: PglabSession) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        if preload is None or "pg_stat_statements" not in preload[0]:
            session.notes.add("server capture off: pg_stat_statements is not in shared_preload_libraries")
            return
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


@pytest.fixture
def pglab_db(request: pytest.FixtureRequest, pglab_server: TestServer, pglab_template: str) -> Iterator[str]:
    """The DSN of a fresh database for this test, cloned from the session's template."""
    from pglab.lab.postgres.testdbs import cloned_database

    with cloned_database(pglab_server, pglab_template) as dsn:
        request.node.stash[_DB_KEY] = dsn
        yield dsn
