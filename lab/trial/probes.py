"""Deterministic probe requests, so that the two sides of a run can be shown to answer alike.

Each path module declares its `PROBES` (method, path, JSON body). They run one at a time on
freshly seeded data, before the load: a correct fix gives the same statuses and bodies, and
leaves the same rows behind. Rows are compared as a multiset per table (a hash of every column
but the serial id and the timestamps, which a write stamps with its own clock), so a fix that
skips a write, or writes something else, is caught even when its response looks right.

A path whose naive answer is *wrong* (NAIVE_ANSWER_WRONG) names, per probe path, the parameters
of its fix file's `oracle` block (ORACLE_PARAMS): each such answer records whether it agrees
with the oracle, so the verdict can tell a wrong naive answer from a fix that changed a right one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import orjson
from psycopg import sql

from pglab.lab.core.errors import UserError
from pglab.lab.runtime.stats import MARKER
from pglab.lab.trial import seed
from pglab.lab.trial.server import lab_connect
from pglab.lab.trial.service import paths

PROBE_TIMEOUT = 60.0
SETTLE_POLL_S = 0.02


def ask(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One request; (status, JSON body, or the text of a non-JSON body such as a stream)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, method=method, data=data,
                                     headers={"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def answers(url: str, dsn: str, entry_id: str) -> list[dict[str, Any]]:
    """The probes' answers, asked again after new data arrived (a fix that caches its first answer
    gives a stale second one), then the rows digest of every lab table."""
    found = _ask_all(url, dsn, entry_id, "")
    settle(url)
    add_new_data(dsn, paths.probes(entry_id))
    found += _ask_all(url, dsn, entry_id, " (after new data)")
    settle(url)
    found += [{"probe": f"rows of {table}", "rows": rows} for table, rows in rows_digest(dsn).items()]
    return found


def settle(url: str) -> None:
    """Wait until the service has no request in flight but this one, background work included: a
    202 answer's write (a shared link's post) may still be under way, and the rows read before it
    commits would differ between the sides by timing alone. A service that never settles is left to
    the rows digest to show."""
    deadline = time.monotonic() + PROBE_TIMEOUT
    while time.monotonic() < deadline:
        status, stats = ask(url, "GET", "/_lab/stats")
        if status != 200 or not isinstance(stats, dict) or stats.get("in_flight", 1) <= 1:
            return
        time.sleep(SETTLE_POLL_S)


def _ask_all(url: str, dsn: str, entry_id: str, when: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    oracles = getattr(paths.module(entry_id), "ORACLE_PARAMS", {})
    for method, path, body in paths.probes(entry_id):
        status, reply = ask(url, method, path, body)
        found.append({"probe": f"{method} {path}{when}", "status": status, "body": reply})
        if path in oracles:
            found[-1]["oracle"] = oracle_check(dsn, entry_id, oracles[path], reply)
    return found


def oracle_statement(entry_id: str) -> str:
    """The one statement of the fix file's `oracle` block: the right answer, computed another way
    than the fix (an oracle that is the fixed query itself would confirm any "fix")."""
    module_name = f"{paths.__name__}.{entry_id}"
    found = paths.statements(module_name, "oracle")
    if len(found) != 1:
        raise UserError(f"fixes/{entry_id}.sql: its `oracle` block must hold one statement, not {len(found)}")
    squeezed = " ".join(found[0].split()).lower()
    if any(squeezed == " ".join(other.split()).lower()
           for block in ("naive", "fixed") for other in paths.statements(module_name, block)):
        raise UserError(f"fixes/{entry_id}.sql: its oracle is the naive or fixed query itself; it must compute"
                        " the answer another way")
    return found[0]


def oracle_check(dsn: str, entry_id: str, params: dict[str, Any], reply: Any) -> dict[str, Any]:
    """Does the probe's answer agree with the oracle? Its rows, serialised as the service
    serialises them, against the answer's items cut down to the oracle's columns, in order."""
    with lab_connect(dsn) as conn:
        cursor = conn.execute(oracle_statement(entry_id), params)
        columns = [column.name for column in cursor.description or ()]
        expected = orjson.loads(orjson.dumps([dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]))
    got = ([{name: item.get(name) for name in columns} for item in reply]
           if isinstance(reply, list) and all(isinstance(item, dict) for item in reply) else None)
    return {"right": got == expected, "expected": len(expected)}


def add_new_data(dsn: str, probes: tuple[paths.Probe, ...]) -> None:
    """What arrives between two rounds of probes: a new message (with rare search words in it) in
    every conversation a probe names and in the hot ones, and a new unread notification for every
    user a probe names, each stamped at its own fixed time so both sides see the same rows in the same
    order. Only inserts, so `seed.restore` removes them with the run's other rows."""
    conversations = {1, 2, 3} | _ids_after("/conversations/", probes)
    users = _ids_after("/users/", probes)
    body = " ".join(["news", *seed.rare_words(3)])
    with lab_connect(dsn) as conn:
        conn.execute(f"INSERT {MARKER} INTO messages (conversation_id, user_id, body, tokens, created_at)"
                     " SELECT c.id, c.owner_id, %s, 0, %s::timestamptz + interval '1 hour' + c.id * interval '1 second'"
                     " FROM conversations c"
                     " WHERE c.id = ANY(%s) ORDER BY c.id", (body, seed.EPOCH, sorted(conversations)))
        conn.execute(f"INSERT {MARKER} INTO notifications (user_id, kind, created_at)"
                     " SELECT u.id, 'news', %s::timestamptz + interval '1 hour' + u.id * interval '1 second'"
                     " FROM users u WHERE u.id = ANY(%s) ORDER BY u.id", (seed.EPOCH, sorted(users)))


def _ids_after(prefix: str, probes: tuple[paths.Probe, ...]) -> set[int]:
    ids = set()
    for _, path, _ in probes:
        head, found, tail = path.partition(prefix)
        number = tail.split("/")[0].split("?")[0]
        if found and number.isdigit():
            ids.add(int(number))
    return ids


def rows_digest(dsn: str) -> dict[str, list[int]]:
    """table -> [row count, sum of the rows' hashes], ids and timestamps left out."""
    digest: dict[str, list[int]] = {}
    with lab_connect(dsn) as conn:
        for table in seed.TABLES:
            columns = [row[0] for row in conn.execute(
                f"SELECT {MARKER} attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped AND attname <> 'id' AND atttypid <> 'timestamptz'::regtype ORDER BY attnum",
                (f"{seed.LAB_SCHEMA}.{table}",)).fetchall()]
            row = conn.execute(sql.SQL("SELECT {} count(*), coalesce(sum(hashtext(ROW({})::text)::bigint), 0)"
                                       " FROM {}").format(
                sql.SQL(MARKER), sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.Identifier(seed.LAB_SCHEMA, table))).fetchone()
            digest[table] = [int(row[0]), int(row[1])] if row else [0, 0]
    return digest
