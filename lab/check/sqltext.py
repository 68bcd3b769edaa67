"""SQL text: splitting into statements, placeholder normalisation, offsets back to file positions.

pglast's own splitter is slower than parsing and silently drops statements it cannot scan, so
statements are split here with one regular expression that knows quotes, comments and dollar
quoting, and each piece is parsed on its own (an unparsable statement costs only itself).

Placeholders of every driver (`%s`, `%(name)s` for psycopg, `:name` for SQLAlchemy, `$n` for
asyncpg) and holes left by Python string building (f-string fields, `%`/`.format` arguments)
all become `$n` so pglast parses the statement; `params` remembers where each `$n` came from so
rules can look at the Python expression that supplies it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pglast import parser

HOLE = "\ue000"  # private-use character standing for a value Python splices into the SQL text
HOLE_NAME = "pglab_hole_"  # what a hole becomes where SQL wants a name

_SPLIT = re.compile(
    r"""'[^']*(?:''[^']*)*'?|"[^"]*"?|--[^\n]*|/\*.*?(?:\*/|\Z)|\$\$.*?(?:\$\$|\Z)"""
    r"""|\$([A-Za-z_]\w*)\$.*?(?:\$\1\$|\Z)|;""",
    re.S,
)
_LEADING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.S)
_NORMALISE = re.compile(
    r"""(?P<quoted>'[^']*(?:''[^']*)*'?|"[^"]*"?|\$\$.*?(?:\$\$|\Z)|\$(?P<tag>[A-Za-z_]\w*)\$.*?(?:\$(?P=tag)\$|\Z))"""
    r"""|(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))"""
    r"""|(?P<pyformat>%(?:\((?P<pyname>[^)]*)\))?[sbt])"""
    r"""|(?P<percent>%%)"""
    r"""|(?P<named>(?<![:\w\\]):(?P<colon>[A-Za-z_]\w*)(?!:))"""
    r"""|(?P<dollar>\$(?P<number>\d+))"""
    r"""|(?P<hole>""" + HOLE + ")",
    re.S,
)
_PYFORMAT_PRESENT = re.compile(r"%(?:\([^)]*\))?[sbt]")


class Locator:
    """Maps a character offset in some text to a 1-based (line, column) in the checked file."""

    def position(self, offset: int) -> tuple[int, int]:
        raise NotImplementedError


class FileLocator(Locator):
    """Offsets into a whole file's text."""

    def __init__(self, text: str, first_line: int = 1, first_column: int = 1) -> None:
        self.starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.first_line = first_line
        self.first_column = first_column

    def position(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.starts, offset) - 1
        column = offset - self.starts[index] + 1
        if index == 0:
            column += self.first_column - 1
        return self.first_line + index, column


class ShiftedLocator(Locator):
    """Offsets into a text derived from another (normalised, or a slice of it)."""

    def __init__(self, base: Locator, anchors: list[tuple[int, int, bool]]) -> None:
        # anchors: (offset here, offset in base, copied one-to-one?) sorted by offset here
        self.base = base
        self.anchors = anchors
        self.keys = [anchor[0] for anchor in anchors]

    def position(self, offset: int) -> tuple[int, int]:
        index = max(bisect.bisect_right(self.keys, offset) - 1, 0)
        here, there, copied = self.anchors[index]
        return self.base.position(there + (offset - here if copied else 0))


class OffsetLocator(Locator):
    """Offsets into a slice of another text, `start` characters into it: what a ShiftedLocator
    with the one anchor (0, start, copied) answers, without its search (one is made per statement)."""

    def __init__(self, base: Locator, start: int) -> None:
        self.base = base
        self.start = start

    def position(self, offset: int) -> tuple[int, int]:
        return self.base.position(self.start + offset)


@dataclass
class Normalised:
    text: str
    locator: Locator
    params: dict[int, Any] = field(default_factory=dict)  # $n -> int position, str name, or a hole's payload


def normalise(raw: str, locator: Locator, holes: list[Any] | None = None, holes_as: str = "param") -> Normalised:
    """Turn driver placeholders and Python holes into `$n`, remembering where each came from.

    `holes` are payloads (usually the Python expression) of the HOLE characters in `raw`, in
    order. A hole inside a quoted literal becomes the letter `x`, so `'%{term}%'` still reads as
    a pattern that starts with a wildcard. With `holes_as="identifier"` the other holes become
    names (`pglab_hole_1`), for SQL that splices a table or column name in; with `"empty"` they
    vanish (a comment marker spliced in front of the statement).
    """
    holes = list(holes or [])
    pyformat = bool(_PYFORMAT_PRESENT.search(raw))
    pieces: list[str] = []
    anchors: list[tuple[int, int, bool]] = []
    params: dict[int, Any] = {}
    names: dict[str, int] = {}
    counters = {"next": 1, "positional": 0, "hole": 0}
    used_numbers = {int(number) for number in re.findall(r"\$(\d+)", raw)}
    length = 0
    cursor = 0

    def emit(text: str, raw_offset: int, copied: bool) -> None:
        nonlocal length
        if text:
            anchors.append((length, raw_offset, copied))
            pieces.append(text)
            length += len(text)

    def next_number() -> int:
        while counters["next"] in used_numbers:
            counters["next"] += 1
        used_numbers.add(counters["next"])
        return counters["next"]

    def take_hole() -> Any:
        index = counters["hole"]
        counters["hole"] += 1
        return holes[index] if index < len(holes) else None

    for match in _NORMALISE.finditer(raw):
        kind = match.lastgroup
        emit(raw[cursor : match.start()], cursor, True)
        token = match.group(0)
        if kind in ("quoted", "comment"):
            if HOLE in token:
                for _ in range(token.count(HOLE)):
                    take_hole()
                if pyformat:
                    token = token.replace("%%", "%")
                emit(token.replace(HOLE, "x"), match.start(), False)
            elif pyformat and "%%" in token:
                emit(token.replace("%%", "%"), match.start(), False)
            else:
                emit(token, match.start(), True)
        elif kind == "pyformat":
            name = match.group("pyname")
            if name is None:
                number = next_number()
                params[number] = counters["positional"]
                counters["positional"] += 1
            else:
                number = names.get(name) or next_number()
                names[name] = number
                params[number] = name
            emit(f"${number}", match.start(), False)
        elif kind == "percent":
            emit("%" if pyformat else "%%", match.start(), False)
        elif kind == "named":
            name = match.group("colon")
            number = names.get(name) or next_number()
            names[name] = number
            params[number] = name
            emit(f"${number}", match.start(), False)
        elif kind == "dollar":
            number = int(match.group("number"))
            params.setdefault(number, number - 1)
            emit(token, match.start(), True)
        elif holes_as == "empty":
            take_hole()
        elif holes_as == "identifier":
            counters["hole_name"] = counters.get("hole_name", 0) + 1
            take_hole()
            emit(f"{HOLE_NAME}{counters['hole_name']}", match.start(), False)
        else:  # hole
            number = next_number()
            params[number] = ("hole", take_hole())
            emit(f"${number}", match.start(), False)
        cursor = match.end()
    emit(raw[cursor:], cursor, True)
    text = "".join(pieces)
    if not anchors:
        anchors.append((0, 0, True))
    return Normalised(text, ShiftedLocator(locator, anchors), params)


@dataclass
class Piece:
    """One statement's text, where it starts in the text it was split from."""

    text: str
    start: int  # offset of the statement's first significant character


def split_statements(text: str) -> Iterator[Piece]:
    """Statements of `text` split at top-level semicolons; blank and comment-only pieces skipped."""
    start = 0
    for match in _SPLIT.finditer(text):
        if match.group(0) == ";":
            yield from _piece(text, start, match.start())
            start = match.end()
    yield from _piece(text, start, len(text))


def _piece(text: str, start: int, end: int) -> Iterator[Piece]:
    lead = _LEADING.match(text, start, end)
    first = lead.end() if lead else start
    if first < end:
        yield Piece(text[first:end], first)


@dataclass
class Located:
    """One statement of a streamed file, with its file position (the text around it is gone)."""

    text: str
    line: int  # file line of the statement's first character
    column: int
    lead: str  # what precedes the statement on its first line (at most LEAD_LIMIT characters)
    trail: str = ""  # what follows it on its last line, as far as it has arrived (likewise)


LEAD_LIMIT = 1000
_OPENER_LIMIT = 128  # characters: longer than any token opener (`$tag$` with a 63-character tag)


def stream_statements(chunks: Iterable[str]) -> Iterator[Located]:
    """`split_statements` over text that arrives in chunks, holding only the statement at hand.

    A file can be far larger than memory allows; this keeps one chunk plus the unfinished
    statement. Only text up to a top-level `;` is ever consumed. When the next chunk comes, the
    scan resumes where a token may still change: at a quote, comment or dollar-quoted body that
    reached the end of what had arrived, else a little before that end (an opener such as `$tag$`
    or `/*` may be cut in two), so a huge statement is not rescanned from its start each time, and a
    huge token is rescanned only each time it has grown by half (linear time, not quadratic).
    """
    buffer = ""
    where = _Cursor()
    resume = 0  # offset in buffer where the scan continues
    fresh = 0  # characters arrived since the last scan
    for chunk in _then_none(chunks):
        buffer += chunk or ""
        fresh += len(chunk or "")
        if chunk is not None and fresh < (len(buffer) - resume) // 2:
            continue  # a huge unfinished token: rescan it only once it has grown by half, not per chunk
        fresh = 0
        where.rewind()
        start = 0
        scanned = resume  # where the text is known to hold no token still open
        for match in _SPLIT.finditer(buffer, resume):
            if match.end() == len(buffer) and chunk is not None and match.group(0) != ";":
                break  # perhaps unfinished: read it again, whole, with the next chunk
            if match.group(0) == ";":
                yield from (where.locate(buffer, piece) for piece in _piece(buffer, start, match.start()))
                start = match.end()
            scanned = match.end()
        else:
            scanned = max(scanned, len(buffer) - _OPENER_LIMIT)
        if chunk is None:
            yield from (where.locate(buffer, piece) for piece in _piece(buffer, start, len(buffer)))
            return
        resume = max(scanned, start) - start
        where.drop(buffer, start)
        buffer = buffer[start:]


def _then_none(chunks: Iterable[str]) -> Iterator[str | None]:
    yield from chunks
    yield None


class _Cursor:
    """File line and column bookkeeping for `stream_statements`, moving forward only, so that
    locating each statement costs the text since the previous one, not the whole buffer."""

    def __init__(self) -> None:
        self.line = 1  # file line of buffer[0]
        self.column = 0  # characters before buffer[0] on that line
        self.lead = ""  # the last of them (LEAD_LIMIT at most), to show the line in a finding

    def rewind(self) -> None:
        self.offset, self.offset_line, self.line_start = 0, self.line, -1  # line_start -1: before buffer[0]

    def _advance(self, buffer: str, offset: int) -> None:
        newlines = buffer.count("\n", self.offset, offset)
        if newlines:
            self.offset_line += newlines
            self.line_start = buffer.rfind("\n", self.offset, offset)
        self.offset = offset

    def locate(self, buffer: str, piece: Piece) -> Located:
        self._advance(buffer, piece.start)
        if self.line_start >= 0:
            column, lead = piece.start - self.line_start - 1, buffer[max(self.line_start + 1, piece.start - LEAD_LIMIT):
                                                                    piece.start]
        else:
            column, lead = self.column + piece.start, (self.lead + buffer[: piece.start])[-LEAD_LIMIT:]
        end = piece.start + len(piece.text)
        newline = buffer.find("\n", end, end + LEAD_LIMIT)
        return Located(piece.text, self.offset_line, column + 1, lead,
                       buffer[end : newline if newline >= 0 else end + LEAD_LIMIT])

    def drop(self, buffer: str, start: int) -> None:
        """`buffer[:start]` is consumed: what follows becomes buffer[0]."""
        self._advance(buffer, start)
        if self.line_start >= 0:
            self.column = start - self.line_start - 1
            self.lead = buffer[max(self.line_start + 1, start - LEAD_LIMIT) : start]
        else:
            self.column, self.lead = self.column + start, (self.lead + buffer[:start])[-LEAD_LIMIT:]
        self.line = self.offset_line


class SqlSyntaxError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse_statement(sql: str) -> list[dict[str, Any]]:
    """The raw statements of `sql` as libpg_query JSON trees (`{"SelectStmt": {...}}`)."""
    return statement_trees(parse_document(sql)[1])


# Only a RawStmt has a `stmt` field, and a RawStmt is only ever an item of `stmts`: one match per
# statement, in order. (A quote inside a JSON string is escaped, so no string value can match.)
_STATEMENT_KIND = re.compile(r'\{"stmt":\{"(\w+)":')


def parse_document(sql: str) -> tuple[list[str], str]:
    """The node types of the statements of `sql` (`SelectStmt`...) and libpg_query's JSON text
    of their trees, not yet decoded.

    The JSON route is used because building pglast's Python node objects costs several times the
    parse itself; plain dicts are what the rules walk. The text lets a rule ask "is there any
    SubLink in here?" with one substring search before walking anything. Decoding it is left to
    whoever needs a tree (`statement_trees`): a statement is decoded when a rule first reads it,
    and its tree dropped with its file, instead of every tree of the run being held between the
    two passes (the memory for those trees cost more than decoding them).
    """
    try:
        text = parser.parse_sql_json(sql)
    except parser.ParseError as error:
        message, offset = (error.args + (0,))[:2] if error.args else ("syntax error", 0)
        raise SqlSyntaxError(str(message), int(offset or 0)) from None
    first = _STATEMENT_KIND.search(text)
    if first is None:
        return [], text
    if text.find('{"stmt":', first.end()) < 0:  # one statement, the usual case: no regex scan of the rest
        return [first.group(1)], text
    return _STATEMENT_KIND.findall(text), text


def statement_trees(document: str) -> list[dict[str, Any]]:
    """The statements of a JSON text from `parse_document`, decoded (`{"SelectStmt": {...}}`)."""
    return [raw["stmt"] for raw in orjson.loads(document).get("stmts", ())]


def byte_to_char(text: str) -> Callable[[int], int]:
    """libpg_query reports locations as UTF-8 byte offsets; this turns them into str offsets."""
    if text.isascii():
        return _identity
    encoded = text.encode("utf-8")

    def convert(offset: int) -> int:
        return len(encoded[: max(offset, 0)].decode("utf-8", errors="ignore"))

    return convert


def _identity(offset: int) -> int:
    return offset
