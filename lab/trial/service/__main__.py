"""`python -m pglab.lab.trial.service --dsn DSN --port PORT [--naive ID ...]`: the chat service on 127.0.0.1."""

from __future__ import annotations

import argparse

import uvicorn

from pglab.lab.trial.service import paths
from pglab.lab.trial.service.app import create_app
from pglab.lab.trial.service.config import ServiceConfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pglab.lab.trial.service", description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--naive", action="append", default=[], choices=paths.available(),
                        help="run this anti-pattern's naive code path (repeatable); the others run fixed")
    parser.add_argument("--pool-size", type=int, default=ServiceConfig.pool_size)
    parser.add_argument("--pool-timeout", type=float, default=ServiceConfig.pool_timeout)
    args = parser.parse_args()
    config = ServiceConfig(dsn=args.dsn, naive=frozenset(args.naive), pool_size=args.pool_size,
                           pool_timeout=args.pool_timeout)
    uvicorn.run(create_app(config), host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                lifespan="on", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
