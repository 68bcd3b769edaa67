"""Which of the server log's serialization failures belong to the database being diagnosed.

The server log is one file for the whole server: counting every "could not serialize access" in it
charges one database with the failures of all the others. Only the log line prefix can say which
database a line came from, and only when it holds `%d` (pglab's own server logs with
`%m [%p] %q%u@%d `, as Debian's packages do). The prefix is turned into a pattern that matches the
lines of this database's sessions exactly (its name written in, every other escape a wildcard).
Without `%d` nothing in the line ties it to a database, so the failures are not counted at all and
a note says why: an under-count the user is told about beats a finding about someone else's errors.
"""

from __future__ import annotations

import re

SERIALIZATION_FAILURE = "could not serialize access"
_ESCAPE = re.compile(r"%(-?\d*)(.)")


def prefix_pattern(prefix: str, database: str) -> re.Pattern[str] | None:
    """A pattern for the start of a line that a session of `database` logged with `prefix`
    (log_line_prefix), up to the message's severity; None when the prefix does not name the
    database. `%q` ends the prefix only for processes that are not sessions, so it matches nothing
    here; padding (`%-10d`) adds spaces."""
    if not any(match.group(2) == "d" for match in _ESCAPE.finditer(prefix)):
        return None
    parts, position = ["^"], 0
    for match in _ESCAPE.finditer(prefix):
        parts.append(re.escape(prefix[position:match.start()]))
        escape = match.group(2)
        if escape == "d":
            parts.append(rf" *{re.escape(database)} *")
        elif escape == "%":
            parts.append("%")
        elif escape != "q":
            parts.append(".*?")
        position = match.end()
    parts.append(re.escape(prefix[position:]))
    return re.compile("".join(parts))


def serialization_failures(log: str, prefix: str | None, database: str) -> tuple[int | None, str | None]:
    """(serialization failures the sessions of `database` logged in this stretch of log, a note);
    the count is None, with a note saying why, when some failures cannot be attributed."""
    lines = [line for line in log.splitlines() if SERIALIZATION_FAILURE in line]
    if not lines:
        return 0, None
    pattern = prefix_pattern(prefix, database) if prefix is not None else None
    if pattern is None:
        return None, (f"the server log holds {len(lines):,} serialization failures (SQLSTATE 40001), but its "
                      f"log_line_prefix {prefix!r} does not name the database (%d), so pglab cannot tell which "
                      f"were database {database!r}'s: none were counted")
    message = re.compile(pattern.pattern + rf"ERROR: +{SERIALIZATION_FAILURE}")
    return sum(1 for line in lines if message.match(line)), None
