"""Options every lab command shares (`run`, `observe`, `grade`, `campaign`), spelled once."""

from __future__ import annotations

import argparse
import os

from pglab.lab.trial import seed


def add_scale(parser: argparse.ArgumentParser, per_entry: bool = True) -> None:
    """`per_entry`: the default is the scale the entry's service path says its harm needs (`scale_for`)."""
    if per_entry:
        parser.add_argument("--scale", choices=tuple(seed.SCALES),
                            help="data size (default: the one the anti-pattern needs to show its harm, small for most)")
    else:
        parser.add_argument("--scale", default="small", choices=tuple(seed.SCALES), help="data size (default small)")


def scale_for(requested: str | None, entry_id: str) -> str:
    """The scale asked for, or the entry's own (`LIVE_SCALE` in its service path)."""
    from pglab.lab.trial.service import paths

    return requested or paths.live_scale(entry_id)


def add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=os.environ.get("PGLAB_DSN"),
                        help="use this server instead of the embedded one")
    parser.add_argument("--allow-write", action="store_true", help="let the lab create schema pglab_lab on --dsn")
