"""The server log as evidence: a window of it read (serialization failures are counted in it, see
`serverlog`), and the auto_explain samples in it read back.

pg_stat_statements keeps a statement as `$n` for every value a client binds on the server side
(psycopg 3's default), so nothing in the statistics views says that `LIMIT 20 OFFSET $1` ran with
`$1 = 150000`. auto_explain does: for each statement slower than `auto_explain.log_min_duration` it
logs the plan and, from PostgreSQL 16, the bound parameter values ("Query Parameters"). pglab's own
server logs them (see `DEFAULT_SETTINGS` in the launcher); on a user's server they are read only
where its owner configured auto_explain with `log_format = json` and pglab's role may read the log
(superuser or pg_read_server_files). Reading a file is read-only; nothing is changed on the server.

A sample is matched to its pg_stat_statements entry by the statement's fingerprint (libpg_query's,
through pglast), which ignores constants and parameter numbers: the server's own queryid is not in
the log unless `auto_explain.log_verbose` is on, and pg_stat_statements writes `LIMIT 20` as
`LIMIT $2`, so the texts differ.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast.parser import ParseError, fingerprint

from pglab.lab.runtime.stats import MARKER, Snapshot, dict_rows
from pglab.lab.runtime.values import untyped_literals

_LOG_READ_LIMIT = 8 * 1024 * 1024
_PLAN_START = re.compile(r"duration: (\d+(?:\.\d+)?) ms\s+plan:\s*(?=\{)")
_PARAMETER = re.compile(r"\$(\d+) = (?:NULL|'((?:[^']|'')*)')")


def read_log(conn: psycopg.Connection[Any], before: Snapshot | None, after: Snapshot) -> str | None:
    """What the server logged between two snapshots (at most the last 8 MB of it), or None when the
    log cannot be read. With no `before`, the log from its start."""
    if after.log_position is None:
        return None
    path, end = after.log_position
    start = before.log_position[1] if before and before.log_position and before.log_position[0] == path else 0
    start = start if start <= end else 0  # the file was rotated or truncated
    start = max(start, end - _LOG_READ_LIMIT)
    try:
        with conn.transaction():
            chunk = dict_rows(conn, f"SELECT {MARKER} pg_read_binary_file(%s, %s, %s) AS data",
                              (path, start, end - start))
    except psycopg.Error:
        return None
    return bytes(chunk[0]["data"]).decode("utf-8", "replace")


@dataclass(frozen=True)
class Sample:
    """One slow call auto_explain logged: its text, the values bound to its `$n` (empty when it has
    none; None when some were not logged: before PostgreSQL 16, NULLs, or cut at the length limit),
    how long it took, and the plan the server chose for it."""

    query: str
    values: dict[int, str] | None
    duration_ms: float
    plan: dict[str, Any]


def statement_key(sql: str) -> str | None:
    """What a logged text and its pg_stat_statements entry share: the fingerprint, None if unparsable."""
    try:
        return str(fingerprint(untyped_literals(sql)))
    except (ParseError, ValueError):
        return None


def _values(query: str, logged: str | None) -> dict[int, str] | None:
    numbers = {int(number) for number in re.findall(r"\$(\d+)", query)}
    if not numbers:
        return {}
    found = {int(match.group(1)): match.group(2) for match in _PARAMETER.finditer(logged or "")}
    values = {number: value.replace("''", "'") for number, value in found.items() if value is not None}
    if not numbers <= set(values) or any(value.endswith("...") for value in values.values()):
        return None
    return values


def samples_in(log: str) -> list[Sample]:
    """Every JSON auto_explain entry in a stretch of server log (entries in other formats are skipped)."""
    decoder = json.JSONDecoder()
    found = []
    for match in _PLAN_START.finditer(log):
        try:
            entry, _ = decoder.raw_decode(log, match.end())
        except ValueError:
            continue  # text format, or an entry cut by the window's edge
        if isinstance(entry, dict) and "Query Text" in entry and "Plan" in entry:
            query = str(entry["Query Text"]).strip()
            found.append(Sample(query, _values(query, entry.get("Query Parameters")), float(match.group(1)),
                                {"Plan": entry["Plan"]}))
    return found


def slowest_samples(log: str) -> dict[str, Sample]:
    """statement key -> the slowest call of that statement auto_explain logged in this stretch of
    log (see `read_log`) whose values are all known: where its plan hurts most."""
    chosen: dict[str, Sample] = {}
    for sample in samples_in(log):
        key = statement_key(sample.query)
        if key is None or sample.values is None:
            continue
        if key not in chosen or sample.duration_ms > chosen[key].duration_ms:
            chosen[key] = sample
    return chosen
