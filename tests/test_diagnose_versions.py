"""The statement rules on PostgreSQL 15 as well as 18: pg_stat_statements renamed columns in 13
and 17, and plans read alike on both. The machine's PostgreSQL 15 server does not preload
pg_stat_statements, so this starts a throwaway 15 from the installed binaries with it preloaded."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from test_detectors_support import flush_stats, ids, of, seed_chat, statements

from conftest import embedded_only
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.postgres.launcher import EmbeddedPostgres
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot

PG15_BIN = Path("/usr/lib/postgresql/15/bin")


@embedded_only("starts servers of its own")
@pytest.mark.skipif(not (PG15_BIN / "postgres").exists(), reason="no PostgreSQL 15 binaries installed")
def test_statement_and_plan_rules_on_postgresql_15() -> None:
    with EmbeddedPostgres(bin_dir=str(PG15_BIN)) as server:
        dsn = server.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")  # type: ignore[index]
            conn.execute("CREATE EXTENSION pg_stat_statements")
            seed_chat(conn)
        page, author = statements(fix_blocks("n_plus_one")["naive"])
        (search,) = statements(fix_blocks("ilike_scan")["naive"])
        before = take_snapshot(dsn)
        with psycopg.connect(dsn) as app:
            for conversation_id in range(1, 11):
                for row in app.execute(page, {"conversation_id": conversation_id, "page_size": 20}).fetchall():
                    app.execute(author, {"user_id": row[1]}).fetchall()
                app.execute(search, {"pattern": "%needle%"}).fetchall()
                app.commit()
            flush_stats(app)
        findings, notes = run_detectors(dsn, before)
        assert not [note for note in notes if "server log" not in note], notes
        assert {"n_plus_one", "ilike_scan", "missing_index"} <= ids(findings)
        (plan_finding,) = of(findings, "ilike_scan")
        assert plan_finding.evidence["statement"]["calls"] == 10
