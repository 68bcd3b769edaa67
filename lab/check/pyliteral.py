"""Python string literals as SQL text with positions: a literal's characters, each run of them
with the file line and column it came from (escapes, implicit concatenation and multi-line strings
included), so a finding inside a string built over five lines points at the right column.
"""

from __future__ import annotations

import ast
import bisect
import codecs
import io
import re
import tokenize
import warnings
from dataclasses import dataclass
from typing import Any

from pglab.lab.check.sqltext import HOLE, Locator

_ESCAPE = re.compile(r"\\(?:\n|N\{[^}]*\}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|.)", re.S)


@dataclass(frozen=True, slots=True)
class Part:
    text: str
    line: int
    column: int
    exact: bool  # characters map one-to-one onto columns of `line`
    payload: Any = None  # for a HOLE: the Python expression spliced in


class Text(Locator):
    """SQL characters built from Python source, with their origin."""

    def __init__(self, parts: list[Part]) -> None:
        self.parts = [part for part in parts if part.text]
        self.value = "".join(part.text for part in self.parts)
        self.starts: list[int] = []
        offset = 0
        for part in self.parts:
            self.starts.append(offset)
            offset += len(part.text)

    @property
    def holes(self) -> list[Any]:
        return [part.payload for part in self.parts if part.text == HOLE]

    def position(self, offset: int) -> tuple[int, int]:
        if not self.parts:
            return 1, 1
        index = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        part = self.parts[index]
        delta = min(offset - self.starts[index], len(part.text) - 1)
        return part.line, part.column + (delta if part.exact else 0)

    def __add__(self, other: Text) -> Text:
        return Text(self.parts + other.parts)


class SourceFile:
    """A Python file's text, its lines and its byte-to-character column conversion."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = source.splitlines(keepends=True)

    def char_column(self, line: int, byte_column: int) -> int:
        """ast reports UTF-8 byte columns; findings report characters."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if text.isascii():
            return byte_column
        return len(text.encode("utf-8")[:byte_column].decode("utf-8", errors="ignore"))

    def start(self, node: ast.AST) -> tuple[int, int]:
        """1-based (line, column) of a node."""
        line = getattr(node, "lineno", 1)
        return line, self.char_column(line, getattr(node, "col_offset", 0)) + 1

    def segment(self, node: ast.AST) -> tuple[str, int, int]:
        """The node's source text and its 1-based start position."""
        line, column = self.start(node)
        end_line = getattr(node, "end_lineno", line) or line
        end_column = self.char_column(end_line, getattr(node, "end_col_offset", 0) or 0)
        chunk = self.lines[line - 1 : end_line]
        if not chunk:
            return "", line, column
        if len(chunk) == 1:
            return chunk[0][column - 1 : end_column], line, column
        text = chunk[0][column - 1 :] + "".join(chunk[1:-1]) + chunk[-1][:end_column]
        return text, line, column

    def line_text(self, line: int) -> str:
        return self.lines[line - 1].rstrip("\r\n") if 0 < line <= len(self.lines) else ""


def _body_parts(body: str, line: int, column: int, raw: bool) -> list[Part]:
    """Parts of one string token's body starting at (line, column), escapes decoded."""
    parts: list[Part] = []
    cursor = 0

    def literal(text: str) -> None:
        nonlocal line, column
        for chunk in text.splitlines(keepends=True):
            parts.append(Part(chunk, line, column, True))
            if chunk.endswith("\n"):
                line, column = line + 1, 1
            else:
                column += len(chunk)

    if raw or "\\" not in body:
        literal(body)
        return parts
    for match in _ESCAPE.finditer(body):
        literal(body[cursor : match.start()])
        escape = match.group(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = codecs.decode(escape, "unicode_escape")
            except (UnicodeDecodeError, ValueError):
                value = escape
        if escape == "\\\n":
            line, column = line + 1, 1
        else:
            parts.append(Part(value, line, column, False))
            column += len(escape)
        cursor = match.end()
    literal(body[cursor:])
    return parts


def literal_text(node: ast.Constant, source: SourceFile) -> Text:
    """A str constant (implicit concatenations included) mapped character by character."""
    segment, line, column = source.segment(node)
    for quote in ('"', "'"):  # the common case, one plain literal on one line, needs no tokenizer
        if len(segment) >= 2 and segment[0] == segment[-1] == quote and segment[1:-1] == node.value \
                and "\n" not in segment and quote not in segment[1:-1] and "\\" not in segment:
            return Text([Part(node.value, line, column + 1, True)])
    parts: list[Part] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO("(" + segment + ")").readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        tokens = []
    for token in tokens:
        if token.type != tokenize.STRING:
            continue
        text = token.string
        prefix = re.match(r"[A-Za-z]*", text).group(0)  # type: ignore[union-attr]
        if "b" in prefix.lower() or "f" in prefix.lower():
            return Text([Part(str(node.value), line, column, False)])
        quote = text[len(prefix) : len(prefix) + 3] if text[len(prefix) :].startswith(('"""', "'''")) else text[
            len(prefix)]
        row, col = token.start
        body_line = line + row - 1
        body_column = (column + col - 1 if row == 1 else col + 1) + len(prefix) + len(quote)
        parts += _body_parts(text[len(prefix) + len(quote) : len(text) - len(quote)], body_line, body_column,
                             "r" in prefix.lower())
    result = Text(parts)
    if result.value != node.value:  # tokenizing went wrong somewhere: keep the value, approximate positions
        return Text([Part(str(node.value), line, column, False)])
    return result
