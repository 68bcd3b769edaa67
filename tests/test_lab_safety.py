"""`lab run --dsn --allow-write` must not harm what is not its own (issue 9, point 5), on a real server:
extensions stay out of the lab schema and only this run's extensions are removed, drops never
cascade into someone else's objects, only this run's service sessions are ended, and scratch
directories of dead lab runs are swept."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.leftovers import owner_tag
from pglab.lab.trial import baseline
from pglab.lab.trial.runner import LabRun
from pglab.lab.trial.seed import LAB_SCHEMA, Scale, lab_dsn, seed
from pglab.lab.trial.server import Footprint, RunIdentity, end_sessions, sweep_scratch

TINY = Scale("tiny", users=40, conversations=30, hot_conversations=2, messages=3_000, notifications=200)


def _extension_schema(conn: psycopg.Connection[object], name: str) -> str | None:
    row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                       " WHERE e.extname = %s", (name,)).fetchone()
    return str(row[0]) if row else None


def test_extensions_go_to_their_usual_schema_and_only_the_runs_own_are_removed(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_trgm")
    seed(pg_dsn, TINY)
    run = LabRun("missing_index", TINY, 5.0)
    run.apply(lab_dsn(pg_dsn), baseline.background_migrations("missing_index"))  # the trigram fix among them
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert _extension_schema(conn, "pg_trgm") not in (None, LAB_SCHEMA)
    assert "pg_trgm" in run.footprint.extensions
    assert run.footprint.remove(lab_dsn(pg_dsn)) == []
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert _extension_schema(conn, "pg_trgm") is None
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (LAB_SCHEMA,)).fetchone() == (0,)


def test_an_extension_someone_else_uses_is_left_in_place(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_trgm")
        conn.execute("CREATE EXTENSION pg_trgm SCHEMA public")
        before = {"plpgsql"}  # as if only the default extension had been there when the run began
        footprint = Footprint()
        footprint.note_extensions(conn, before | {"pg_stat_statements"})
        conn.execute("CREATE TABLE public.theirs (body text)")
        conn.execute("CREATE INDEX theirs_trgm ON public.theirs USING gin (body gin_trgm_ops)")
    notes = footprint.remove(pg_dsn)
    assert any("pg_trgm left installed" in note for note in notes)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('public.theirs_trgm') IS NOT NULL").fetchone() == (True,)


def test_reseeding_never_cascades_into_someone_elses_objects(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE VIEW public.their_report AS SELECT count(*) FROM {LAB_SCHEMA}.messages")
    with pytest.raises(UserError, match="did not create"):
        seed(pg_dsn, TINY)
    assert any("did not create" in note for note in Footprint().remove(pg_dsn))  # the end of a run: a note
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT * FROM public.their_report").fetchone() == (TINY.messages,)


def test_only_this_runs_service_sessions_are_ended(pg_dsn: str) -> None:
    ours, theirs = RunIdentity(), RunIdentity()
    with psycopg.connect(pg_dsn, application_name=ours.application_name) as mine, \
            psycopg.connect(pg_dsn, application_name=theirs.application_name) as other, \
            psycopg.connect(pg_dsn, application_name="pglab-service") as legacy:
        end_sessions(pg_dsn, ours.application_name)
        time.sleep(0.2)
        with pytest.raises(psycopg.OperationalError):
            mine.execute("SELECT 1")
        assert other.execute("SELECT 1").fetchone() == (1,)
        assert legacy.execute("SELECT 1").fetchone() == (1,)


def test_scratch_of_dead_runs_is_swept_and_live_ones_kept() -> None:
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    root = Path(tempfile.gettempdir())
    dead = root / f"pglab-service-{child.pid}-1-test"
    dead_load = root / f"pglab-load-{child.pid}-1-test"
    alive = root / f"pglab-service-{owner_tag(os.getpid())}-test"
    for path in (dead, dead_load, alive):
        path.mkdir()
    try:
        swept = sweep_scratch()
        assert dead in swept and dead_load in swept and not dead.exists() and not dead_load.exists()
        assert alive.exists()
    finally:
        for path in (dead, dead_load, alive):
            if path.exists():
                path.rmdir()
