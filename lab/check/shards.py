"""Every core for `pglab check` when there is enough to parse.

The files are shared out by size between this process and forked workers. A worker keeps what it
parsed between the two passes (a parse tree is far costlier to send than to keep), so the engine
talks to it twice: "extract these" (answer: each file's DDL), then "check against this schema"
(answer: each file's findings). Forking after the rules are loaded means the workers import and
discover nothing; what travels through the pipes is pglab's own results, between pglab's own
processes.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from pglab.lab.check.filecheck import Worker
from pglab.lab.check.schema import Schema

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

Items = list[tuple[str, str]]  # (path, text)


def cores() -> int:
    """Cores this process may use; `PGLAB_CHECK_JOBS` overrides (1: everything in-process)."""
    override = os.environ.get("PGLAB_CHECK_JOBS", "")
    if override.isdigit() and int(override) > 0:
        return int(override)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Shards:
    """`Worker`'s two passes over a list of files, spread over `count` processes (this one included)."""

    def __init__(self, worker: Worker, count: int) -> None:
        self.local = worker
        self.remote: list[tuple[Any, Connection]] = []
        import multiprocessing  # only when there is work to share: it costs start-up time

        context = multiprocessing.get_context("fork")
        for _ in range(count - 1):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(Worker(worker.config, worker.dispatch), theirs),
                                      daemon=True)
            process.start()
            theirs.close()
            self.remote.append((process, mine))

    def extract(self, items: Items) -> dict[str, Any]:
        shares = _balance(items, len(self.remote) + 1)
        for (_, connection), share in zip(self.remote, shares[1:], strict=True):
            connection.send(("extract", share))
        out = self.local.extract(shares[0])
        for _, connection in self.remote:
            out.update(_receive(connection))
        return out

    def check(self, schema: Schema, items: Items) -> dict[str, Any]:
        shares = _balance(items, len(self.remote) + 1)
        for (_, connection), share in zip(self.remote, shares[1:], strict=True):
            connection.send(("check", schema, share))
        out = self.local.check(schema, shares[0])
        for _, connection in self.remote:
            out.update(_receive(connection))
        return out

    def close(self) -> None:
        for process, connection in self.remote:
            with contextlib.suppress(OSError):
                connection.send(("stop",))
            connection.close()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self.remote = []


def _balance(items: Items, count: int) -> list[Items]:
    """`count` shares of about equal text size, biggest files first (a greedy, good enough split)."""
    shares: list[Items] = [[] for _ in range(count)]
    sizes = [0] * count
    for item in sorted(items, key=lambda item: -len(item[1])):
        least = sizes.index(min(sizes))
        shares[least].append(item)
        sizes[least] += len(item[1]) + 1
    return shares


def _receive(connection: Connection) -> dict[str, Any]:
    try:
        status, payload = connection.recv()
    except EOFError:
        raise RuntimeError("a pglab check worker process died") from None
    if status != "ok":
        raise RuntimeError(f"a pglab check worker failed: {payload}")
    return payload


def _serve(worker: Worker, connection: Connection) -> None:
    """A worker process: answer the engine's requests until told to stop. Ctrl-C is the parent's
    to handle (it stops the workers); a worker that raised reports it in one line."""
    import signal  # here, not at the top: a run too small to share out does not pay for its import

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        try:
            if request[0] == "extract":
                connection.send(("ok", worker.extract(request[1])))
            elif request[0] == "check":
                connection.send(("ok", worker.check(request[1], request[2])))
            else:
                return
        except Exception as error:  # a bug: the parent reports it as one line
            connection.send(("error", f"{type(error).__name__}: {error}"))
