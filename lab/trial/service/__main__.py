"""`python -m pglab.lab.trial.service --port PORT [--naive ID ...]`: the chat service on 127.0.0.1.

The DSN comes from the environment (`PGLAB_SERVICE_DSN`): it carries a password, and a command
line is visible to every local user."""

from __future__ import annotations

import argparse
import os

import uvicorn

from pglab.lab.trial.service import paths
from pglab.lab.trial.service.app import create_app
from pglab.lab.trial.service.config import DSN_VARIABLE, TOKEN_VARIABLE, ServiceConfig


def _override(text: str) -> tuple[str, str]:
    entry_id, _, path = text.partition("=")
    if entry_id not in paths.available() or not path:
        raise argparse.ArgumentTypeError(f"expected ID=FILE with ID one of {', '.join(paths.available())}")
    return entry_id, path


# The lab stops the service once it has read everything it measures, and then ends the service's
# sessions itself. What is still in flight then is the naive side's backlog (requests queued behind
# a saturated pool, nobody waiting for them): cancelled at once, not finished in up to 2 s of grace
# (1.4 s of a naive side's 14 s, measured on ilike_scan).
GRACEFUL_SHUTDOWN_S = 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pglab.lab.trial.service", description=__doc__)
    parser.add_argument("--dsn", default=os.environ.get(DSN_VARIABLE),
                        help=f"the database (default: ${DSN_VARIABLE}, which keeps a password out of `ps`)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--naive", action="append", default=[], choices=paths.available(),
                        help="run this anti-pattern's naive code path (repeatable); the others run fixed")
    parser.add_argument("--override", action="append", default=[], type=_override, metavar="ID=FILE",
                        help="take this path's naive and fixed implementations from FILE (repeatable)")
    parser.add_argument("--application-name", default=ServiceConfig.application_name)
    parser.add_argument("--pool-size", type=int, default=ServiceConfig.pool_size)
    parser.add_argument("--pool-timeout", type=float, default=ServiceConfig.pool_timeout)
    args = parser.parse_args()
    if not args.dsn:
        parser.error(f"no database: set {DSN_VARIABLE} or pass --dsn")
    config = ServiceConfig(dsn=args.dsn, naive=frozenset(args.naive), overrides=tuple(args.override),
                           application_name=args.application_name, pool_size=args.pool_size,
                           pool_timeout=args.pool_timeout, control_token=os.environ.get(TOKEN_VARIABLE, ""))
    uvicorn.run(create_app(config), host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)


if __name__ == "__main__":
    main()
