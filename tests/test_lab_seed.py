"""Seeding: the sizes asked for, the skew promised, consistent totals, and a schema of its own."""

from __future__ import annotations

import psycopg
import pytest

from pglab.lab.core.errors import UserError
from pglab.lab.trial import invariants
from pglab.lab.trial.seed import LAB_SCHEMA, SCALES, Scale, get_scale, lab_dsn, rare_words, seed, word

TINY = Scale("tiny", users=60, conversations=50, hot_conversations=2, messages=6_000, notifications=300)


def test_seed_makes_the_rows_of_the_scale_with_hot_conversations(pg_dsn: str) -> None:
    steps: list[tuple[str, int, int]] = []
    seed(pg_dsn, TINY, progress=lambda label, done, total: steps.append((label, done, total)))
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                  for table in ("users", "conversations", "messages", "notifications")}
        hot_share = conn.execute(
            "SELECT avg((conversation_id <= %s)::int) FROM messages", (TINY.hot_conversations,)).fetchone()[0]  # type: ignore[index]
        cold_max = conn.execute(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM messages WHERE conversation_id > %s"
            " GROUP BY conversation_id) c", (TINY.hot_conversations,)).fetchone()[0]  # type: ignore[index]
        assert invariants.lost_updates(conn) == 0
    assert counts == {"users": 60, "conversations": 50, "messages": 6_000, "notifications": 300}
    assert 0.25 < hot_share < 0.35  # 2 of 50 conversations hold about 30 % of the messages
    assert cold_max * 5 < 6_000 * 0.3 / 2  # each hot one holds over 5x any cold one
    assert steps[-1][1] == steps[-1][2]  # the progress reached its total


def test_rare_words_are_rare_and_common_words_common(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        def share(term: str) -> float:
            row = conn.execute("SELECT avg((body LIKE %s)::int) FROM messages", (f"%{term}%",)).fetchone()
            return float(row[0]) if row else 0.0

        assert share(word(0)) > 0.2
        assert max(share(term) for term in rare_words(5)) < 0.01


def test_reseeding_replaces_the_lab_schema_but_not_a_foreign_one(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    seed(pg_dsn, TINY)  # its own schema: dropped and made again
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA somebody_elses")
    with pytest.raises(UserError, match="not created by pglab"):
        seed(pg_dsn, TINY, schema="somebody_elses")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (LAB_SCHEMA,)).fetchone() == (1,)


def test_scales_grow_by_about_ten_and_unknown_ones_are_refused() -> None:
    assert SCALES["medium"].messages == 500_000
    assert SCALES["large"].messages == 5_000_000
    with pytest.raises(UserError, match="unknown scale 'huge'"):
        get_scale("huge")
