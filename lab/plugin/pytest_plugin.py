"""pglab's pytest plugin: a new N+1, an unindexed scan of a big table, a transaction left open or
a blown statement budget fails the test that introduced it, with the lines of code that sent the
statement.

Installed with pglab through the `pytest11` entry point, so it is loaded by every pytest run in the
environment; it stays inactive (no capture, no hooks beyond option parsing) until enabled with
`--pglab` or `pglab = true` in the ini file. Importing this module therefore imports nothing but
pytest and the settings: psycopg, pglast and the checks load only when the plugin is switched on
or a fixture runs.

Per test it captures what the code sends through psycopg 3 and asyncpg
(`pglab.lab.plugin.capture`), optionally what the server saw from other processes
(`pglab.lab.plugin.serverside`), and runs the checks of `pglab.lab.plugin.querychecks` and
`pglab.lab.plugin.planchecks`, configured per session (ini / command line) and per test with
`@pytest.mark.pglab(max_queries=..., allow=[...])`. Under pytest-xdist each worker checks its
own tests and the controller merges their results for the summary and the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import pytest

from pglab.lab.plugin.fixtures import (  # noqa: F401  (the plugin's fixtures, registered with it)
    DB_KEY,
    SESSION_KEY,
    pglab,
    pglab_db,
    pglab_queries,
    pglab_seed,
    pglab_server,
    pglab_template,
    recorder_of,
)
from pglab.lab.plugin.settings import Settings, knobs

if TYPE_CHECKING:
    from pglab.lab.core.findings import Finding
    from pglab.lab.plugin.capture import Recorder
    from pglab.lab.plugin.records import Statement

_SETTINGS_KEY = pytest.StashKey[Settings]()
_WORKER_OUTPUT = "pglab_results"


def _marker() -> str:
    values = ", ".join(f"{name}={default!r}" for name, _, _, default in knobs())
    return f"pglab({values}, allow=[]): per-test settings of pglab's query checks"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pglab", "pglab: PostgreSQL anti-pattern checks per test")
    group.addoption("--pglab", action="store_true", default=False, help="enable pglab's query checks")
    parser.addini("pglab", type="bool", default=False, help="enable pglab's query checks")
    for name, kind, text, _ in knobs():
        flag = "--pglab-" + name.replace("_", "-")
        if kind is bool:
            group.addoption(flag, default=None, choices=("on", "off"), help=text)
        else:
            group.addoption(flag, default=None, type=kind, metavar="N", help=text)
        parser.addini(f"pglab_{name}", type="string", default="", help=text)
    group.addoption("--pglab-allow", action="append", default=[], metavar="ITEM",
                    help="allow a catalogue id or code, a check name (query_budget, max_queries...) or a fingerprint "
                         "everywhere (repeatable)")
    parser.addini("pglab_allow", type="linelist", default=[], help="allow-list for every test")
    group.addoption("--pglab-server-capture", action="store_true", default=False,
                    help="also count statements other processes sent to pglab_db (pg_stat_statements)")
    parser.addini("pglab_server_capture", type="bool", default=False, help="see --pglab-server-capture")
    group.addoption("--pglab-report", default=None, metavar="FILE.json", help="write the session's findings as JSON")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _marker())
    if config.getoption("pglab") or config.getini("pglab"):
        session = PglabSession(config, _session_settings(config))
        config.stash[SESSION_KEY] = session
        config.pluginmanager.register(session, "pglab-session")


def _session_settings(config: pytest.Config) -> Settings:
    values: dict[str, Any] = {}
    for name, kind, _, _ in knobs():
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


class PglabSession:
    """The enabled plugin: capture around each test's call, checks after it, the report at the end."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        import pglab.lab.plugin.capture as capture
        from pglab.lab.plugin.report import Results

        self.config = config
        self.settings = settings
        self.server_capture = bool(config.getoption("pglab_server_capture") or config.getini("pglab_server_capture"))
        self.results = Results()
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
        from pglab.lab.plugin import serverside

        settings = item.stash.get(_SETTINGS_KEY, None) or self.settings_for(item)
        recorder = recorder_of(item)
        database = item.stash.get(DB_KEY, None)
        before = serverside.snapshot(database, self.results.notes) if self.server_capture and database else None
        capture.follow_asyncpg()
        capture.activate(recorder)
        try:
            result = yield
        except BaseException:
            recorder.release()  # a failing test is not checked: let its connections go
            raise
        finally:
            capture.activate(None)
            recorder.finish()
        try:
            statements = list(recorder.statements)
            if before is not None and database is not None:
                statements += serverside.server_statements(database, before, recorder.statements,
                                                           recorder.connections, self.results.notes)
            findings = self._check(item.nodeid, statements, recorder, settings, database)
        finally:
            recorder.release()
        if findings:
            from pglab.lab.plugin.querychecks import describe

            pytest.fail(describe(findings), pytrace=False)
        return result

    def _check(self, nodeid: str, statements: list[Statement], recorder: Recorder, settings: Settings,
               database: str | None) -> list[Finding]:
        import pglab.lab.plugin.querychecks as querychecks
        from pglab.lab.plugin.serverside import SERVER_CONNECTION
        from pglab.lab.plugin.settings import allowed

        found = (querychecks.detector_checks(statements, recorder.transactions, settings)
                 + querychecks.budget(statements, settings))
        notes: list[str] = []
        caveats: list[str] = []
        explained = 0
        if settings.plans:
            from pglab.lab.plugin.planchecks import plan_checks

            dsn_of = {key: info.dsn for key, info in recorder.connections.items()}
            if database:
                dsn_of[SERVER_CONNECTION] = database
            outcome = plan_checks(statements, dsn_of, recorder.handles, settings)
            found += outcome.findings
            notes += outcome.skipped
            caveats += outcome.caveats
            explained = outcome.explained
        failing = [f for f in found if not allowed(f, settings.allow)]
        passing = [f for f in found if allowed(f, settings.allow)]
        self._remember(nodeid, statements, recorder, failing, passing, notes, caveats, explained)
        return failing

    def _remember(self, nodeid: str, statements: list[Statement], recorder: Recorder, failing: list[Finding],
                  passing: list[Finding], notes: list[str], caveats: list[str], explained: int) -> None:
        from collections import Counter

        from pglab.lab.plugin.report import TestRecord
        from pglab.lab.plugin.shapes import calls_of, counted, normalised, shape_of

        kinds: Counter[str] = Counter()
        for statement in statements:
            if not counted(statement):
                continue
            shape = shape_of(statement.sql, statement.has_params)
            calls = calls_of(statement)
            kinds[shape.statement_class] += calls
            self.results.calls[shape.fingerprint][nodeid] += calls
            if shape.fingerprint not in self.results.texts:
                self.results.texts[shape.fingerprint] = normalised(statement.sql, statement.has_params)
        self.results.records.append(TestRecord(
            nodeid=nodeid, statements=sum(kinds.values()), selects=kinds["select"], writes=kinds["write"],
            transactions=len(recorder.transactions),
            seconds_in_database=round(sum(s.duration for s in statements), 4), plans_explained=explained,
            findings=[f.as_json() for f in failing], allowed=[f.as_json() for f in passing], notes=notes,
            caveats=caveats,
        ))

    # --- pytest-xdist: workers hand their results to the controller ---------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """On the controller, as each worker finishes: merge its results."""
        dumped = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
        if dumped:
            self.results.merge(dumped)

    # --- the report -----------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pglab.lab.plugin.report import summary

        if hasattr(self.config, "workerinput"):
            return
        terminalreporter.section("pglab")
        summary(self.results, terminalreporter.write_line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):  # an xdist worker: the controller reports
            self.config.workeroutput[_WORKER_OUTPUT] = self.results.dumps()  # type: ignore[attr-defined]
            return
        target = self.config.getoption("pglab_report")
        if not target:
            return
        from pglab.lab.plugin.report import write_json

        settings = {**asdict(self.settings), "allow": list(self.settings.allow), "server_capture": self.server_capture}
        write_json(self.results, target, settings)
