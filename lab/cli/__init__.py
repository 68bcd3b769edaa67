"""The `pglab` command line.

Each command is a small function taking the parsed arguments and returning an exit code. Errors a
user can act on are raised as `UserError` and printed as one line; nothing a user typed should
ever produce a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.errors import UserError

# Command -> the module that defines it (its `add_parser`). Only the module of the command being
# run is imported: `pglab check` must not pay for psycopg, the lab or the advisor at start-up.
COMMAND_MODULES = {"db": "dbcommand", "check": "checkcommand", "lab": "labcommand",
                   "diagnose": "diagnosecommand", "advise-index": "advisecommand"}

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def cmd_catalog(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from pglab.lab.core.completeness import in_lab as runs_in_lab
    from pglab.lab.core.errors import UserError

    entries = load_catalogue()
    if args.category:
        categories = sorted({entry.category for entry in entries})
        if args.category not in categories:
            raise UserError(f"unknown category {args.category!r}; valid categories: {', '.join(categories)}")
        entries = tuple(entry for entry in entries if entry.category == args.category)
    in_lab = {entry.id for entry in entries if runs_in_lab(entry.id)}
    if args.json:
        print(json.dumps([{**entry.as_json(), "lab": entry.id in in_lab} for entry in entries], indent=2))
        return 0
    table = Table(title=f"pglab catalogue: {len(entries)} anti-patterns ({len(in_lab & {e.id for e in entries})} "
                        "run in the lab)", show_lines=False)
    for column in ("code", "id", "category", "title", "static", "lab"):
        table.add_column(column, overflow="fold", no_wrap=column in ("code", "id", "lab"))
    for entry in entries:
        static = "yes" if entry.static_signal else f"no: {entry.not_static_reason}"
        table.add_row(entry.code, entry.id, entry.category, entry.title, static, "yes" if entry.id in in_lab else "-")
    Console().print(table)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markdown import Markdown

    entry = find_entry(args.id)
    if args.markdown:
        print(entry.lesson_markdown)
    else:
        Console().print(Markdown(entry.lesson_markdown))
    return 0


class _Version(argparse.Action):
    """`--version`, read from the installed package's metadata only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print pglab's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"pglab {version('pglab')}")
        except PackageNotFoundError:
            parser.exit(2, "pglab: error: pglab's package metadata is missing (reinstall it)\n")
        parser.exit(0)


def _command_of(argv: Sequence[str]) -> str | None:
    """The command `argv` runs, when it is one of COMMAND_MODULES; None builds every command
    (help, a typo that needs the list of valid commands); "" none (`--version` needs no command,
    and importing them all cost it a second)."""
    for argument in argv:
        if not argument.startswith("-"):
            return argument if argument in COMMAND_MODULES else None
        if argument == "--version":
            return ""
        if argument in ("-h", "--help"):
            return None
    return None


def build_parser(command: str | None = None) -> Parser:
    """The argument parser; with `command`, only that command's module is imported."""
    parser = Parser(
        prog="pglab",
        description="PostgreSQL performance anti-pattern lab and linter: lessons, static checks, "
        "runtime detectors and measured fixes for two dozen ways application code hurts Postgres.",
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    catalog = commands.add_parser("catalog", help="list the anti-patterns pglab knows")
    catalog.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    catalog.add_argument("--category", help="only entries of this category")
    catalog.set_defaults(handler=cmd_catalog)

    explain = commands.add_parser("explain", help="print the lesson of one anti-pattern")
    explain.add_argument("id", metavar="ID_OR_CODE", help="an id such as missing_index, or a code such as PGL001")
    explain.add_argument("--markdown", action="store_true", help="print the raw Markdown")
    explain.set_defaults(handler=cmd_explain)

    for name, module in COMMAND_MODULES.items():
        if command is None or command == name:
            importlib.import_module(f"pglab.lab.cli.{module}").add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(arguments))
    args = parser.parse_args(arguments)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        code = handler(args)
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
    if argv is None and getattr(args, "exit_at_once", False):
        _exit_at_once(code)
    return code


def _exit_at_once(code: int) -> None:
    """End the process without the interpreter's shutdown, for a command that asked for it
    (`exit_at_once`: nothing of its own left to clean up, such as `check`). After a check the
    heap holds the run's texts, trees and findings as millions of small objects, and freeing
    them one by one at exit costs a visible part of the run; the OS frees them at once. Only
    when `pglab` is the program (`main()` without arguments): a caller in the same process goes
    on, and not under a profiler or tracer (cProfile, coverage), which write their results at
    exit. Output is flushed first; if that fails (a closed pipe), the usual exit handles it."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return
    os._exit(code)

