"""Deterministic probe requests, so that the two sides of a run can be shown to answer alike.

Each path module declares its `PROBES` (method, path, JSON body). They run one at a time on
freshly seeded data, before the load: a correct fix gives the same statuses and bodies, and
leaves the same rows behind. Rows are compared as a multiset per table (a hash of every column
but the serial id and the timestamps, which a write stamps with its own clock), so a fix that
skips a write, or writes something else, is caught even when its response looks right.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from psycopg import sql

from pglab.lab.runtime.stats import MARKER
from pglab.lab.trial import seed
from pglab.lab.trial.server import lab_connect
from pglab.lab.trial.service import paths

PROBE_TIMEOUT = 60.0


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
    """The probes' answers, then the rows digest of every lab table."""
    found: list[dict[str, Any]] = []
    for method, path, body in paths.probes(entry_id):
        status, reply = ask(url, method, path, body)
        found.append({"probe": f"{method} {path}", "status": status, "body": reply})
    found += [{"probe": f"rows of {table}", "rows": rows} for table, rows in rows_digest(dsn).items()]
    return found


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
