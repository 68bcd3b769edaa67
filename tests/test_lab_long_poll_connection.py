"""long_poll_connection on a live server: the detector sees a session polling inside one held
transaction, not the same looks made one short statement at a time; the service's naive path pins
a pooled connection per waiting client, so another request waits for the polls to end, while the
fixed path gives the connection back between looks and answers the same."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from test_detectors_support import ids, seed_chat, statements
from test_lab_service import TINY, call

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors
from pglab.lab.trial.seed import lab_dsn, seed
from pglab.lab.trial.service.config import ServiceConfig
from pglab.lab.trial.service.process import running_service

ENTRY = "long_poll_connection"
LIMITS = {ENTRY: {"min_transaction_seconds": 1.0}}
NOTHING_NEW = {"user_id": 1, "after": 10**9}


def detected(dsn: str) -> set[str]:
    return ids(run_detectors(dsn, explain_top=False, thresholds=LIMITS)[0])


def test_the_detector_sees_a_poll_inside_a_held_transaction(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=2_000, notifications=2_000)
    (poll,) = statements(fix_blocks(ENTRY)["naive"])
    (look,) = statements(fix_blocks(ENTRY)["fixed"])
    with psycopg.connect(pg_dsn) as app:  # naive: looks again and again in the transaction it keeps open
        for _ in range(8):
            app.execute(poll, NOTHING_NEW).fetchall()
            time.sleep(0.2)
        found = detected(pg_dsn)
        app.rollback()
    assert ENTRY in found and "streaming_txn" not in found
    with psycopg.connect(pg_dsn, autocommit=True) as app:  # fixed: each look a statement of its own
        for _ in range(8):
            app.execute(look, NOTHING_NEW).fetchall()
            time.sleep(0.2)
        assert ENTRY not in detected(pg_dsn)


def _read_while_polling(url: str, polls: int, wait: float) -> tuple[float, list[Any]]:
    """Start `polls` long polls that find nothing new; then time one page of messages."""
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(
        call(f"{url}/users/1/notifications/poll?after=1000000000&wait={wait:g}"))) for _ in range(polls)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # every poll has its first look behind it
    began = time.perf_counter()
    status, _ = call(f"{url}/conversations/1/messages")
    waited = time.perf_counter() - began
    for thread in threads:
        thread.join(timeout=30)
    assert status == 200
    return waited, answers


def test_a_naive_poll_pins_its_connection_and_a_fixed_one_does_not(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    dsn = lab_dsn(pg_dsn)
    pool = ServiceConfig(dsn).pool_size
    waits = {}
    for naive in (True, False):
        with running_service(dsn, frozenset({ENTRY} if naive else set())) as url:
            waits[naive], answers = _read_while_polling(url, pool, wait=3.0)
            fresh = call(f"{url}/users/3/notifications/poll?after=0&wait=1")
        assert answers == [(200, [])] * pool
        assert fresh[0] == 200 and fresh[1] and all(note["id"] > 0 for note in fresh[1])
    assert waits[True] > 2.0  # the page waited for a poll to give its connection back
    assert waits[False] < 1.0
