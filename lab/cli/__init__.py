"""The `pglab` command line.

Each command is a small function taking the parsed arguments and returning an exit code. Errors a
user can act on are raised as `UserError` and printed as one line; nothing a user typed should
ever produce a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from pglab.lab.cli import advisecommand, checkcommand, dbcommand, diagnosecommand, labcommand
from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.errors import UserError

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def cmd_catalog(args: argparse.Namespace) -> int:
    entries = load_catalogue()
    if args.category:
        entries = tuple(entry for entry in entries if entry.category == args.category)
    if args.json:
        print(json.dumps([entry.as_json() for entry in entries], indent=2))
        return 0
    table = Table(title=f"pglab catalogue: {len(entries)} anti-patterns", show_lines=False)
    for column in ("code", "id", "category", "title", "static"):
        table.add_column(column, overflow="fold", no_wrap=column in ("code", "id"))
    for entry in entries:
        static = "yes" if entry.static_signal else f"no: {entry.not_static_reason}"
        table.add_row(entry.code, entry.id, entry.category, entry.title, static)
    Console().print(table)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    entry = find_entry(args.id)
    if args.markdown:
        print(entry.lesson_markdown)
    else:
        Console().print(Markdown(entry.lesson_markdown))
    return 0


def build_parser() -> Parser:
    parser = Parser(
        prog="pglab",
        description="PostgreSQL performance anti-pattern lab and linter: lessons, static checks, "
        "runtime detectors and measured fixes for two dozen ways application code hurts Postgres.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    catalog = commands.add_parser("catalog", help="list the anti-patterns pglab knows")
    catalog.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    catalog.add_argument("--category", help="only entries of this category")
    catalog.set_defaults(handler=cmd_catalog)

    explain = commands.add_parser("explain", help="print the lesson of one anti-pattern")
    explain.add_argument("id", metavar="ID_OR_CODE", help="an id such as missing_index, or a code such as PGL001")
    explain.add_argument("--markdown", action="store_true", help="print the raw Markdown")
    explain.set_defaults(handler=cmd_explain)

    dbcommand.add_parser(commands)
    checkcommand.add_parser(commands)
    labcommand.add_parser(commands)
    diagnosecommand.add_parser(commands)
    advisecommand.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except UserError as error:
        print(f"pglab: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("pglab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:  # a bug in pglab: still one line and exit 2; PGLAB_DEBUG=1 shows the traceback
        if os.environ.get("PGLAB_DEBUG"):
            raise
        print(f"pglab: internal error: {type(error).__name__}: {error} (PGLAB_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 2

