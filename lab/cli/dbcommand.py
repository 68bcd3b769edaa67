"""`pglab db start|stop|status|clean`: argument parsing. Starting, holding and stopping the server
is `pglab.lab.postgres.supervise`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.postgres import supervise


def parse_settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise UserError(f"--set takes NAME=VALUE, got {pair!r}")
        settings[name.strip()] = value
    return settings


def cmd_start(args: argparse.Namespace) -> int:
    settings = parse_settings(args.set or [])  # before anything starts
    return supervise.start(settings, args.set or [], args.detach)


def cmd_stop(args: argparse.Namespace) -> int:
    return supervise.stop()


def cmd_status(args: argparse.Namespace) -> int:
    return supervise.status(args.dsn)


def cmd_clean(args: argparse.Namespace) -> int:
    return supervise.clean()


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="start, stop or inspect a throwaway PostgreSQL server")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start a throwaway server and print its DSN; runs until stopped")
    start.add_argument("--detach", action="store_true", help="return once ready; stop later with `pglab db stop`")
    start.add_argument("--set", action="append", metavar="NAME=VALUE", help="a server setting (repeatable)")
    start.set_defaults(handler=cmd_start)
    stop = actions.add_parser("stop", help="stop the server `pglab db start` started and remove its data")
    stop.set_defaults(handler=cmd_stop)
    status = actions.add_parser("status", help="is a pglab server running? With --dsn: check that server")
    status.add_argument("--dsn", default=os.environ.get("PGLAB_DSN"), help="a server to check (or PGLAB_DSN)")
    status.set_defaults(handler=cmd_status)
    clean = actions.add_parser("clean", help="remove pglab's caches and the data of killed servers")
    clean.set_defaults(handler=cmd_clean)
