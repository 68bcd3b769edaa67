"""Every core for `pglab check` when there is enough to parse.

The files are shared out between this process and forked workers, a few at a time as each
process gets through its part. A worker keeps what it parsed between the two passes (a parse tree
is far costlier to send than to keep), so the engine talks to it in two rounds: "extract these"
(answer: each file's DDL), as often as there are files left, then "check against this schema"
(answer: each file's findings), and "check these too" for a worker done before the engine (files
the engine extracted and has not started, parsed again there). While it waits between the two,
a worker decodes the trees its pass 2 will walk, so the time the engine spends building the schema
is not lost. Forking after the rules are loaded means the workers import and discover nothing;
what travels through the pipes is pglab's own results, between pglab's own processes.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator
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
    """`Worker`'s two passes over a list of files, spread over `count` processes (this one included).

    The workers are forked when the first pass starts, so they hold the files' texts from birth:
    what goes to them is file numbers, small messages that never fill a pipe (a worker busy
    sending its answer could not read a big request, and the two sides would wait on each other)."""

    def __init__(self, worker: Worker, count: int) -> None:
        self.local = worker
        self.count = count
        self.remote: list[tuple[Any, Connection]] = []
        self.numbers: dict[str, int] = {}  # path -> its number among the files of pass 1

    def _start(self, items: Items) -> None:
        import multiprocessing  # only when there is work to share: it costs start-up time

        self.numbers = {path: number for number, (path, _) in enumerate(items)}
        context = multiprocessing.get_context("fork")
        for _ in range(self.count - 1):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(Worker(self.local.config, self.local.dispatch), theirs,
                                                           items), daemon=True)
            process.start()
            theirs.close()
            self.remote.append((process, mine))

    def extract(self, items: Items) -> dict[str, Any]:
        """Pass 1, shared out as it goes: how long a file takes to parse is not in proportion to
        its size (a few long INSERTs parse fast, a file of small joins slowly), so a split fixed
        in advance left one process idle while the other finished. Files go out biggest first,
        in small batches: each worker has two in hand (the next one queued while it parses),
        and this process takes one file at a time between looking for workers' answers."""
        self._start(items)
        queue = deque(sorted(range(len(items)), key=lambda index: -len(items[index][1])))
        batch = max(sum(len(text) for _, text in items) // (16 * self.count), 1)
        out: dict[str, Any] = {}
        pending = {connection: 0 for _, connection in self.remote}  # batches sent, not yet answered
        for connection in pending:
            for _ in range(2):
                pending[connection] += _send_batch(connection, queue, items, batch)

        def mine() -> Iterator[tuple[str, str]]:
            while True:
                self._collect(pending, queue, items, batch, out, wait=False)
                if not queue:
                    return
                yield items[queue.popleft()]

        out.update(self.local.extract(mine()))
        while any(pending.values()):  # the last answers: meanwhile, get this process's pass 2 ready
            self.local.prepare(lambda: any(connection.poll() for connection, count in pending.items() if count))
            self._collect(pending, queue, items, batch, out, wait=True)
        return {path: out[path] for path, _ in items}  # in file order, whoever parsed what

    @staticmethod
    def _collect(pending: dict[Connection, int], queue: deque[int], items: Items, size: int, out: dict[str, Any],
                 *, wait: bool) -> None:
        """Take in the workers' answers that have arrived (with `wait`, at least one), and give
        each worker that answered its next batch."""
        ready = [connection for connection, count in pending.items() if count and connection.poll()]
        if wait and not ready:
            ready = [_wait_any([connection for connection, count in pending.items() if count])]
        for connection in ready:
            out.update(_receive(connection))
            pending[connection] += _send_batch(connection, queue, items, size) - 1

    def check(self, schema: Schema, items: Items) -> dict[str, Any]:
        """Pass 2: each process checks the files it extracted (and a share of `items`). How long
        that takes is not known in advance, so a worker that is done before this process gets
        some of the files this one has not started (it parses them again: their trees are here)."""
        shares = _balance(items, len(self.remote) + 1)
        pending = {}  # connection -> requests not yet answered
        for (_, connection), share in zip(self.remote, shares[1:], strict=True):
            connection.send(("check", schema, share))
            pending[connection] = 1
        out: dict[str, Any] = {}

        def between(todo: deque[tuple[str, str]]) -> None:
            for connection in [connection for connection, count in pending.items() if count and connection.poll()]:
                out.update(_receive(connection))
                pending[connection] -= 1
                if given := self._hand_over(todo):
                    connection.send(("recheck", given))
                    pending[connection] += 1

        out.update(self.local.check(schema, shares[0], between))
        while any(pending.values()):
            connection = _wait_any([connection for connection, count in pending.items() if count])
            out.update(_receive(connection))
            pending[connection] -= 1
        return out

    def _hand_over(self, todo: deque[tuple[str, str]]) -> list[int]:
        """Take from the end of `todo` (the smallest files: they were extracted biggest first)
        the numbers of files of pass 1 for an idle worker: about two fifths of what is left, since
        it parses them again before checking them."""
        budget = sum(len(text) for _, text in todo) * 2 // 5
        given: list[int] = []
        while todo and todo[-1][0] in self.numbers and len(todo[-1][1]) <= budget:
            path, text = todo.pop()
            given.append(self.numbers[path])
            budget -= len(text)
        return given

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


def _send_batch(connection: Connection, queue: deque[int], items: Items, size: int) -> int:
    """Send the numbers of the next files (about `size` characters, at least one file); 1 if
    any were sent, else 0."""
    share: list[int] = []
    total = 0
    while queue and (not share or total + len(items[queue[0]][1]) <= size):
        share.append(queue.popleft())
        total += len(items[share[-1]][1])
    if share:
        connection.send(("extract", share))
    return 1 if share else 0


def _balance(items: Items, count: int) -> list[Items]:
    """`count` shares of about equal text size, biggest files first (a greedy, good enough split)."""
    shares: list[Items] = [[] for _ in range(count)]
    sizes = [0] * count
    for item in sorted(items, key=lambda item: -len(item[1])):
        least = sizes.index(min(sizes))
        shares[least].append(item)
        sizes[least] += len(item[1]) + 1
    return shares


def _wait_any(connections: list[Connection]) -> Connection:
    """The first of `connections` with an answer to read (blocking until there is one)."""
    from multiprocessing.connection import wait

    ready = wait(connections)
    return ready[0]  # type: ignore[return-value]


def _receive(connection: Connection) -> dict[str, Any]:
    try:
        status, payload = connection.recv()
    except EOFError:
        raise RuntimeError("a pglab check worker process died") from None
    if status != "ok":
        raise RuntimeError(f"a pglab check worker failed: {payload}")
    return payload


def _serve(worker: Worker, connection: Connection, items: Items) -> None:
    """A worker process: answer the engine's requests until told to stop (`items`: the files of
    pass 1, which its requests name by number). Ctrl-C is the parent's to handle (it stops the
    workers); a worker that raised reports it in one line."""
    import signal  # here, not at the top: a run too small to share out does not pay for its import

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    schema = None
    while True:
        try:
            if not connection.poll():  # idle: the engine is between the passes, or busy itself
                worker.prepare(connection.poll)
            request = connection.recv()
        except EOFError:
            return
        try:
            if request[0] == "extract":
                connection.send(("ok", worker.extract([items[index] for index in request[1]])))
            elif request[0] == "check":
                schema = request[1]
                connection.send(("ok", worker.check(schema, request[2])))
            elif request[0] == "recheck":  # files the engine had extracted, handed over
                connection.send(("ok", worker.check(schema, [items[index] for index in request[1]])))
            else:
                return
        except Exception as error:  # a bug: the parent reports it as one line
            connection.send(("error", f"{type(error).__name__}: {error}"))
