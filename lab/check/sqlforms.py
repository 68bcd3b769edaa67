"""SQL as people write it for tools other than the server: psql scripts and driver-side
adaptation. Both are turned into text libpg_query parses, with every offset still pointing into
the file as written.

- psql: meta-commands (`\\c db`, `\\set x 1`) and the data rows of `COPY ... FROM stdin` up to
  `\\.` are not SQL; left in, they swallow the statement that follows.
- psycopg2 adapts a Python tuple to a parenthesised list, so `WHERE id IN %s` runs fine; read as
  written it is a syntax error in text the user never wrote.
"""

from __future__ import annotations

import re

from pglab.lab.check.sqltext import Locator, ShiftedLocator

_PSQL_META = re.compile(r"^[ \t]*\\[^\n]*", re.M)  # `\c db`, `\set x 1`, `\i file`: psql, not SQL
_COPY_FROM_STDIN = re.compile(r"\bCOPY\b[^;]*?\bFROM\s+STDIN\b[^;]*;[^\n]*\n?", re.I | re.S)
_COPY_END = re.compile(r"^\\\.[ \t]*$", re.M)
_NOT_NEWLINE = re.compile(r"[^\n]")


def psql_blanked(text: str) -> str:
    """`text` with psql meta-commands and COPY ... FROM stdin data blocks turned into spaces
    (newlines kept, so every offset and line number still points into the file as written)."""
    if "\\" not in text:
        return text
    if not text.isascii() or "stdin" in text.lower():  # cheap test first: most scripts copy no data in
        blocks = []
        for copy in _COPY_FROM_STDIN.finditer(text):
            end = _COPY_END.search(text, copy.end())
            blocks.append((copy.end(), end.end() if end else len(text)))
        text = _blank(text, blocks)
    return _blank(text, [meta.span() for meta in _PSQL_META.finditer(text)])


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with every character but newlines in `spans` (which may overlap) made a space."""
    if not spans:
        return text
    pieces, cursor = [], 0
    for start, end in sorted(spans):
        start = max(start, cursor)
        if start < end:
            pieces += [text[cursor:start], _NOT_NEWLINE.sub(" ", text[start:end])]
            cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


_TUPLE_PARAM = re.compile(r"\bIN\s+(\$\d+)", re.I)


def tuple_adapted(text: str, locator: Locator) -> tuple[str, Locator] | None:
    """psycopg2 adapts a tuple to a parenthesised list, so `WHERE id IN %s` is valid where it
    runs: read it as `IN ($1)`, the parentheses pointing at the placeholder."""
    matches = list(_TUPLE_PARAM.finditer(text))
    if not matches:
        return None
    pieces: list[str] = []
    anchors: list[tuple[int, int, bool]] = []
    length = cursor = 0
    for match in matches:
        start, end = match.span(1)
        for piece, origin, copied in ((text[cursor:start], cursor, True), ("(", start, False),
                                      (text[start:end], start, True), (")", end - 1, False)):
            anchors.append((length, origin, copied))
            pieces.append(piece)
            length += len(piece)
        cursor = end
    anchors.append((length, cursor, True))
    pieces.append(text[cursor:])
    return "".join(pieces), ShiftedLocator(locator, anchors)
