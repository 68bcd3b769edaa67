"""Isolation: both sides start from the same baseline, every other lab entry's fix in effect, and
differ only by the entry's own fix. n_plus_one's naive side already has the messages index
(missing_index's fix), so what its fix cures is the loop, not a missing index."""

from __future__ import annotations

import psycopg

from pglab.lab.trial import baseline, labschema
from pglab.lab.trial.runner import LabRun, index_definitions
from pglab.lab.trial.seed import Scale, lab_dsn, seed

TINY = Scale("tiny", users=40, conversations=30, hot_conversations=2, messages=3_000, notifications=200)
MESSAGES_INDEX = "ON pglab_lab.messages USING btree (conversation_id, created_at)"


def _baseline_indexes(dsn: str, entry_id: str) -> list[str]:
    seed(dsn, TINY)
    LabRun(entry_id, TINY, 5.0).apply(lab_dsn(dsn), baseline.background_migrations(entry_id))
    return index_definitions(lab_dsn(dsn))


def test_the_naive_side_of_n_plus_one_already_has_the_messages_index(pg_dsn: str) -> None:
    assert any(MESSAGES_INDEX in definition for definition in _baseline_indexes(pg_dsn, "n_plus_one"))
    assert "missing_index" in baseline.fixes_in_effect("n_plus_one", fixed=False)
    assert "n_plus_one" not in baseline.fixes_in_effect("n_plus_one", fixed=False)
    assert not baseline.migration("n_plus_one")  # its fix is code alone: the sides differ by the code path


def test_the_naive_side_of_missing_index_lacks_its_whole_fix_and_has_every_other(pg_dsn: str) -> None:
    indexes = _baseline_indexes(pg_dsn, "missing_index")
    assert not any(MESSAGES_INDEX in definition for definition in indexes)
    assert any("gin_trgm_ops" in definition for definition in indexes)  # ilike_scan's fix is in effect
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        for statement in baseline.migration("missing_index"):
            conn.execute(statement)
    assert any(MESSAGES_INDEX in definition for definition in index_definitions(lab_dsn(pg_dsn)))


def test_a_fixed_side_leaves_nothing_behind_for_the_next_naive_side(pg_dsn: str) -> None:
    """count_per_request's fix is a table kept by triggers: measuring the fix's capacity (prepare)
    and a fixed side both add them, and the naive side after must run without them."""
    dsn = lab_dsn(pg_dsn)
    run = LabRun("count_per_request", TINY, 5.0)
    run.prepare(dsn)  # seeds, and measures the load on the reference fix
    run.reset(dsn)  # as before every side: takes the fix away
    with psycopg.connect(dsn, autocommit=True) as conn:
        prepared = labschema.objects(conn)
        run.apply_own_migration(dsn)
        after_fix = labschema.objects(conn)
        assert "pglab_lab.unread_deltas" in after_fix["TABLE"] - prepared["TABLE"]
        assert len(after_fix["TRIGGER"] - prepared["TRIGGER"]) == 3 and after_fix["ROUTINE"] - prepared["ROUTINE"]
        run.reset(dsn)
        assert labschema.objects(conn) == prepared


def test_the_baseline_builds_the_same_indexes_as_the_fixes_as_written(pg_dsn: str) -> None:
    """The baseline builds the fixes' indexes in one pass (nothing runs yet): the same indexes as the
    migrations applied as written, CONCURRENTLY and all."""
    rebuilt = _baseline_indexes(pg_dsn, "missing_index")
    seed(pg_dsn, TINY)
    written = [statement for other in baseline.lab_ids() if other != "missing_index"
               for statement in baseline.migration(other)]
    assert any("CONCURRENTLY" in statement for statement in written)
    assert not any("CONCURRENTLY" in statement and "CREATE" in statement
                   for statement in baseline.background_migrations("missing_index"))
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        for statement in dict.fromkeys(written):
            conn.execute(statement)
    assert sorted(rebuilt) == sorted(index_definitions(lab_dsn(pg_dsn)))
