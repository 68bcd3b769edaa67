"""`pglab check PATH...`: static analysis of a codebase for the catalogue's anti-patterns.

Exit 0 when nothing is found, 1 when something is, 2 on usage or internal errors. Input that was
not analysed (an unreadable file, an unparsable statement, a file too large) also exits 1: a run
that skipped part of its input is not clean. Other diagnostics (unused suppressions) are reported
without changing the exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from pglab.lab.check.config import Config, load_config
from pglab.lab.check.engine import run
from pglab.lab.check.schema import schema_from_catalog
from pglab.lab.core.errors import UserError
from pglab.lab.core.report import FORMATS, plural, render


def _keys(value: str) -> list[str]:
    return [key.strip() for key in value.split(",") if key.strip()]


def add_parser(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="find the anti-patterns in a codebase without running it (Python and SQL files)",
        description="Read .sql and .py files, find the SQL they run and the schema their DDL builds, "
        "and report every catalogue anti-pattern visible statically. Exit 0: nothing found; 1: findings; "
        "2: usage or internal error.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to check")
    check.add_argument("--format", choices=FORMATS, help="output format (default: text, or [tool.pglab] format)")
    check.add_argument("--select", type=_keys, action="extend", default=None, metavar="IDS",
                       help="only these anti-patterns (ids or codes, comma-separated)")
    check.add_argument("--ignore", type=_keys, action="extend", default=None, metavar="IDS",
                       help="skip these anti-patterns (ids or codes, comma-separated)")
    check.add_argument("--dsn", default=None,
                       help="read the schema from this live database (read-only) instead of the DDL in PATHs")
    check.add_argument("--no-cache", action="store_true", help="do not read or write the content-keyed cache")
    check.set_defaults(handler=cmd_check, exit_at_once=True)  # see `pglab.lab.cli._exit_at_once`


def configure(args: argparse.Namespace) -> Config:
    config = load_config(Path.cwd())
    if args.select:
        config.select = list(args.select)
    if args.ignore:
        config.ignore = config.ignore + list(args.ignore)
    if args.format:
        config.format = args.format
    if config.format not in FORMATS:
        raise UserError(f"unknown format {config.format!r} in [tool.pglab]; expected one of {', '.join(FORMATS)}")
    if cache := os.environ.get("PGLAB_CACHE_DIR"):
        config.cache_dir = Path(cache)
    return config


def cmd_check(args: argparse.Namespace) -> int:
    config = configure(args)
    config.selected_ids()  # unknown ids are usage errors, before any work
    started = time.perf_counter()
    schema = schema_from_catalog(args.dsn) if args.dsn else None
    result = run(args.paths, config, schema=schema, use_cache=not args.no_cache)
    elapsed = time.perf_counter() - started
    summary = {"files": result.files, "statements": result.statements, "cached_files": result.cached_files,
               "schema": result.schema.summary(), "seconds": round(elapsed, 3)}
    clean = (f"No anti-patterns found in {plural(result.files, 'file')} "
             f"({plural(result.statements, 'SQL statement')}, {elapsed:.2f}s); schema: {result.schema.describe()}.")
    diagnostics = result.diagnostics + result.schema.warnings(result.statements)
    render(result.findings, config.format, diagnostics=diagnostics, summary=summary, clean_message=clean,
           tool="pglab check")
    for note in result.notes:
        print(f"pglab: note: {note}", file=sys.stderr)
    return 1 if result.findings or result.unanalysed else 0
