"""The chat service, started as the lab starts it, on a small seeded database.

Naive and fixed paths must answer the same thing (a fix that changes the answer is no fix), and
the naive paths must really carry their flaw: lost updates under concurrent posts, a transaction
left open while a stream runs.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pglab.lab.trial import invariants
from pglab.lab.trial.seed import Scale, lab_dsn, seed
from pglab.lab.trial.service import paths
from pglab.lab.trial.service.process import running_service, service_stats, ship_fix

TAG = "pglab-service-test"
TINY = Scale("tiny", users=40, conversations=30, hot_conversations=2, messages=3_000, notifications=200)


@pytest.fixture
def data_dsn(pg_dsn: str) -> Iterator[str]:
    seed(pg_dsn, TINY)
    with psycopg.connect(lab_dsn(pg_dsn), autocommit=True) as conn:
        conn.execute("CREATE INDEX ON messages (conversation_id, created_at)")
    yield lab_dsn(pg_dsn)


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"content-type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def test_naive_and_fixed_paths_answer_alike(data_dsn: str) -> None:
    reads = ("/conversations/1", "/conversations/7", "/conversations/1/tokens", "/conversations/9/tokens",
             "/conversations/3/messages", "/users/4/conversations", "/users/4/notifications")
    answers = []
    for naive in (frozenset(paths.available()), frozenset()):
        with running_service(data_dsn, naive) as url:
            answers.append([call(url + path) for path in reads])
    assert answers[0] == answers[1]
    statuses = {status for status, _ in answers[0]}
    assert statuses == {200}
    tokens = answers[0][2][1]
    assert len(tokens) == 200 and tokens[0]["running_total"] > tokens[-1]["running_total"]


def test_posts_charge_accounts_and_broadcast_reaches_every_user(data_dsn: str) -> None:
    with running_service(data_dsn, frozenset()) as url:
        status, stored = call(f"{url}/conversations/3/messages", "POST", {"user_id": 5, "body": "four words in here"})
        assert (status, stored["tokens"]) == (201, 4)
        assert call(f"{url}/broadcast", "POST", {"kind": "news"}) == (201, {"recipients": TINY.users})
        status, marked = call(f"{url}/users/5/notifications/read", "POST")
        assert status == 200 and marked["marked"] >= 1
        assert call(f"{url}/search?q=zzzz") == (200, [])
        assert call(f"{url}/conversations/x")[0] == 400
        assert call(f"{url}/nowhere")[0] == 404
        assert call(f"{url}/conversations/3/messages", "POST", {"body": "no author"})[0] == 400
    with psycopg.connect(data_dsn, autocommit=True) as conn:
        assert invariants.lost_updates(conn) == 0


def _post_concurrently(url: str, count: int) -> list[int]:
    def post(index: int) -> int:
        return call(f"{url}/conversations/{1 + index % 5}/messages", "POST", {"user_id": 1, "body": "a b c"})[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(post, range(count)))


@pytest.mark.parametrize(("naive", "loses"), [(True, True), (False, False)])
def test_concurrent_posts_lose_updates_only_on_the_naive_path(data_dsn: str, naive: bool, loses: bool) -> None:
    with running_service(data_dsn, frozenset({"counter_race"} if naive else set())) as url:
        assert set(_post_concurrently(url, 80)) == {201}
    with psycopg.connect(data_dsn, autocommit=True) as conn:
        assert (invariants.lost_updates(conn) > 0) is loses


@pytest.mark.parametrize(("naive", "idles"), [(True, True), (False, False)])
def test_a_naive_stream_holds_its_transaction_open(data_dsn: str, naive: bool, idles: bool) -> None:
    with running_service(data_dsn, frozenset({"streaming_txn"} if naive else set()), application_name=TAG) as url, \
            invariants.ActivitySampler(data_dsn, TAG) as sampler:
        began = time.time()
        reply: list[Any] = []
        streamer = threading.Thread(target=lambda: reply.append(
            call(f"{url}/conversations/2/stream", "POST", {"user_id": 3, "prompt": "one two"})))
        streamer.start()
        streamer.join(timeout=30)
        ended = time.time()
    assert reply[0][0] == 200 and reply[0][1].split() == ["one", "two"] * 5
    assert (sampler.longest_idle_in_transaction(began, ended) > 1.0) is idles


def test_stats_count_requests(data_dsn: str) -> None:
    with running_service(data_dsn, frozenset()) as url:
        call(f"{url}/health")
        stats = service_stats(url)
    assert stats["requests"] >= 2 and stats["refused_connections"] == 0 and stats["errors"] == 0


def test_probes_settle_until_a_shares_background_post_is_written(data_dsn: str) -> None:
    """A 202 answer's background work is still in flight; the rows the probes read must wait for it."""
    from pglab.lab.trial.probes import settle
    from pglab.lab.trial.service.paths import missing_timeouts

    def messages() -> int:
        with psycopg.connect(data_dsn) as conn:
            row = conn.execute("SELECT count(*) FROM messages WHERE conversation_id = 7").fetchone()
            return int(row[0]) if row else 0

    before = messages()
    with running_service(data_dsn, frozenset()) as url:
        call(f"{url}/conversations/7/links", "POST", {"user_id": 7, "url": missing_timeouts.HANGING_HOST + "x"})
        assert service_stats(url)["in_flight"] == 2  # the share, and this question
        started = time.monotonic()
        settle(url)
        assert time.monotonic() - started >= missing_timeouts.PREVIEW_TIMEOUT_S - 1.0
        assert service_stats(url)["in_flight"] == 1
        call(f"{url}/conversations/7/links", "POST", {"user_id": 7, "url": "http://fast.example/x"})
        settle(url)
        assert messages() == before + 1


def _command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        try:
            lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # not a process, or gone meanwhile
            continue
    return lines


def test_the_service_command_line_carries_no_password(data_dsn: str) -> None:
    """The lab's DSN holds the embedded server's password; a command line is readable by every local
    user (`ps`), so the service gets its DSN through its environment."""
    with running_service(data_dsn, frozenset()) as url:
        port = url.rsplit(":", 1)[1]
        service = [line for line in _command_lines() if "pglab.lab.trial.service" in line and port in line]
        assert service, "the service process was not found"
        assert not [line for line in service if data_dsn in line or "password" in line or "dbname" in line]
        assert call(f"{url}/health")[0] == 200


def test_no_two_code_paths_claim_the_same_route() -> None:
    """Routes come from each path module; FastAPI would silently serve the first of two that clash."""
    from fastapi.routing import APIRoute

    from pglab.lab.trial.service.app import create_app
    from pglab.lab.trial.service.config import ServiceConfig

    app = create_app(ServiceConfig(dsn="postgresql://nobody@127.0.0.1:1/none"))  # connects lazily: never here
    claimed = [(method, route.path) for route in app.routes if isinstance(route, APIRoute)
               for method in route.methods or ()]
    assert sorted(claimed) == sorted(set(claimed)), sorted({c for c in claimed if claimed.count(c) > 1})


def _service_backends(dsn: str) -> set[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (TAG,)).fetchall()
    return {pid for (pid,) in rows}


def test_a_shipped_fix_needs_the_token_and_the_session_fix_renews_the_connections(data_dsn: str) -> None:
    """A campaign ships fixes into the running service. Most paths switch at their next request;
    the `session` path's settings are the connections' own (timeouts set when they connect), so
    its fix takes effect only on new connections: the pool is replaced. Without the token, nothing."""
    session = paths.by_role()["session"]
    roles = set(paths.by_role().values())
    other = next(entry_id for entry_id in paths.available() if entry_id not in roles)  # a route's own path
    with running_service(data_dsn, frozenset({session, other}), application_name=TAG, control_token="t0k") as url:
        assert call(f"{url}/users/4/conversations")[0] == 200
        before = _service_backends(data_dsn)
        assert before
        with pytest.raises(urllib.error.HTTPError):
            ship_fix(url, "wrong", other)
        ship_fix(url, "t0k", other)
        assert call(f"{url}/users/4/conversations")[0] == 200
        assert _service_backends(data_dsn) == before  # the same connections serve the other fix
        ship_fix(url, "t0k", session)
        assert call(f"{url}/users/4/conversations")[0] == 200
        assert not _service_backends(data_dsn) & before  # new connections, with the fixed settings
