"""Options every lab command shares (`run`, `observe`, `grade`, `campaign`), spelled once."""

from __future__ import annotations

import argparse
import os

from pglab.lab.trial import seed


def add_scale(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", default="small", choices=tuple(seed.SCALES), help="data size (default small)")


def add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=os.environ.get("PGLAB_DSN"),
                        help="use this server instead of the embedded one")
    parser.add_argument("--allow-write", action="store_true", help="let the lab create schema pglab_lab on --dsn")
