"""Running a Locust profile as its own process(es) and reading the results back as data.

Importing locust monkey-patches the interpreter with gevent, so pglab never imports it: the
profile (`loads/<id>.py`) runs in `python -m locust --headless`, alone or as a master with N
workers on loopback (Locust's own distributed mode, the one that spreads load over machines).
The profile's recorder (`loads/recorder.py`) writes per-second, per-endpoint buckets to a JSON
file; `LoadResult` turns the buckets of one phase of the load shape into counts, failures,
offered and achieved throughput and percentiles. Latency is measured without coordinated
omission: paced users (`loads/pacing.py`) keep a schedule and latency counts from each slot.
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.launcher import free_port
from pglab.lab.postgres.leftovers import owner_tag
from pglab.lab.trial import child

STOP_GRACE = 15.0  # seconds Locust gets to stop and write its results after the shape ends
START_ALLOWANCE = 30.0  # seconds for Locust (and its workers) to start
LOOPBACK = ("http://127.0.0.1:", "http://[::1]:")  # the only hosts the lab sends load to
# The endpoint name under which the recorder files the slots a waiting user never got to send.
NEVER_SENT = "(never sent)"
MAX_RPS = 20_000  # a run stops after this many requests per second of its duration, whatever its shape
# Files in the run's scratch directory (`loads/recorder.py` reads the names from these variables):
# Locust waits, imported, until the gate exists, and writes the time its load started to the other.
GATE_VARIABLE, STARTED_VARIABLE = "PGLAB_LOAD_GATE", "PGLAB_LOAD_STARTED"


def profile_path(entry_id: str) -> Path:
    resource = resources.files("pglab.loads") / f"{entry_id}.py"
    if not resource.is_file():
        raise UserError(f"no load profile loads/{entry_id}.py")
    return Path(str(resource))


def profile_constants(entry_id: str) -> dict[str, Any]:
    """The profile's upper-case literal constants (SLO_P99_MS...), read without importing it."""
    tree = ast.parse(profile_path(entry_id).read_text(encoding="utf-8"))
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                try:
                    constants[name] = ast.literal_eval(node.value)
                except ValueError:
                    continue  # not a literal: not a setting the lab reads
    return constants


def percentile(histogram: dict[int, int], fraction: float) -> float:
    """The response time below which `fraction` of the requests fall, from a rounded histogram."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    wanted = fraction * total
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= wanted:
            return float(value)
    return float(max(histogram))


@dataclass
class Summary:
    """One phase (or window) of a load run, for all endpoints together and for each.

    Latencies count from each request's scheduled slot (`loads/pacing.py`), so the time a request
    waited to be sent is part of it. `histogram` is what the SLO judges: the time until the answer
    starts, which is the whole response, or a streamed answer's first chunk (the model, not the
    database, sets a stream's length). Each endpoint keeps `histogram` (to the end: a stream's last
    chunk) and, for streams, `first_chunk`."""

    requests: int
    failures: int
    seconds: float
    histogram: dict[int, int]
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    offered: int = 0
    answered: int = 0  # successful answers that arrived in the window, whenever they were sent

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def offered_rps(self) -> float:
        """Requests per second the users' schedules asked for, answered or not."""
        return self.offered / self.seconds if self.seconds else 0.0

    @property
    def achieved_rps(self) -> float:
        """Requests per second answered without failure (goodput)."""
        return (self.requests - self.failures) / self.seconds if self.seconds else 0.0

    @property
    def answered_rps(self) -> float:
        """Successful answers a second that arrived in the window: the service's throughput, late
        answers included. A saturated side's answers each take seconds, so the requests sent in
        a window and answered are fewer than the answers it gave in that window."""
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.histogram, fraction)

    def endpoint_p(self, name: str, fraction: float) -> float:
        """An endpoint's percentile to the end of its answer (a stream's last chunk); 0 if unseen."""
        return percentile(self.endpoints.get(name, {}).get("histogram", {}), fraction)

    def endpoint_first_chunk_p(self, name: str, fraction: float) -> float:
        """A streamed endpoint's percentile to its first chunk (other endpoints: to the end)."""
        endpoint = self.endpoints.get(name, {})
        return percentile(endpoint.get("first_chunk") or endpoint.get("histogram", {}), fraction)

    def worst_endpoint(self, fraction: float, min_requests: int) -> float:
        """The highest percentile among endpoints with at least `min_requests` requests: a slow
        endpoint with little traffic is hidden in the percentile of all requests together."""
        return max((self.endpoint_first_chunk_p(name, fraction) for name, endpoint in self.endpoints.items()
                    if endpoint["requests"] >= min_requests), default=0.0)


def _add_counts(into: dict[int, int], counts: dict[str, int]) -> None:
    for key, count in counts.items():
        into[int(float(key))] = into.get(int(float(key)), 0) + count


@dataclass
class LoadResult:
    started_at: float
    phases: list[dict[str, Any]]
    buckets: dict[str, dict[str, dict[str, Any]]]
    distributed: bool = False
    offered: dict[str, int] = field(default_factory=dict)  # scheduled second -> slots offered
    answered: dict[str, int] = field(default_factory=dict)  # second an answer arrived -> successful answers

    def phase(self, name: str) -> tuple[float, float]:
        for phase in self.phases:
            if phase["name"] == name:
                return self.started_at + phase["start"], self.started_at + phase["end"]
        raise KeyError(name)

    def summary(self, start: float | None = None, end: float | None = None) -> Summary:
        """Requests that started in [start, end) (epoch seconds; whole seconds, as bucketed)."""
        first = int(start) if start is not None else None
        last = int(end) if end is not None else None

        def inside(second: str) -> bool:
            return not ((first is not None and int(second) < first) or (last is not None and int(second) >= last))

        def within(counts: dict[str, int]) -> int:
            return sum(count for second, count in counts.items() if inside(second))

        histogram: dict[int, int] = {}
        endpoints: dict[str, dict[str, Any]] = {}
        errors: dict[str, int] = {}
        for second, names in self.buckets.items():
            if not inside(second):
                continue
            for name, cell in names.items():
                endpoint = endpoints.setdefault(name, {"requests": 0, "failures": 0, "histogram": {},
                                                       "first_chunk": {}})
                endpoint["requests"] += cell["count"]
                endpoint["failures"] += cell["failures"]
                _add_counts(endpoint["histogram"], cell["times"])
                _add_counts(endpoint["first_chunk"], cell.get("first_chunk", {}))
                _add_counts(histogram, cell.get("first_chunk") or cell["times"])
                for message, count in cell["errors"].items():
                    errors[message] = errors.get(message, 0) + count
        seconds = float(last - first) if first is not None and last is not None else float(len(self.buckets))
        return Summary(requests=sum(e["requests"] for e in endpoints.values()),
                       failures=sum(e["failures"] for e in endpoints.values()),
                       seconds=seconds, histogram=histogram, endpoints=endpoints, errors=errors,
                       offered=within(self.offered), answered=within(self.answered))

    def hold(self) -> Summary:
        """The hold's whole seconds only: a second cut by its start also holds ramp traffic."""
        start, end = self.phase("hold")
        return self.summary(math.ceil(start), end)

    def timeline(self, width: float = 1.0) -> list[dict[str, Any]]:
        """Per window of `width` seconds from the start: `t` (seconds from the start), `rps`,
        `p50_ms`, `p95_ms`, `p99_ms` (as the SLO judges them), `errors` (failed requests), and
        `requests` and `offered_rps` beside them."""
        seconds = [int(second) for second in (*self.buckets, *self.offered)]
        if not seconds:
            return []
        end = max(seconds) + 1
        rows = []
        at = float(int(self.started_at))
        while at < end:
            window = self.summary(at, at + width)
            rows.append({"t": round(at - self.started_at, 1), "rps": round(window.rps, 1),
                         "p50_ms": window.p(0.5), "p95_ms": window.p(0.95), "p99_ms": window.p(0.99),
                         "errors": window.failures, "requests": window.requests,
                         "offered_rps": round(window.offered_rps, 1)})
            at += width
        return rows

    @classmethod
    def read(cls, path: Path) -> LoadResult:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(started_at=float(data["started_at"] or 0.0), phases=data["phases"], buckets=data["buckets"],
                   distributed=bool(data.get("distributed")), offered=dict(data.get("offered", {})),
                   answered=dict(data.get("answered", {})))


def spawn(module: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m module args` in its own session (a terminal's Ctrl-C reaches only the lab, which
    stops it in order), dying with the lab (see `pglab.lab.trial.child`)."""
    with log.open("ab") as out:
        return subprocess.Popen(child.command(module, args), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {}), child.PARENT_VARIABLE: str(os.getpid())})


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def last_lines(log: Path, count: int = 3) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-count:])


@contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"pglab-load-{owner_tag()}-") as directory:  # swept if we die
        yield Path(directory)


def locust_arguments(profile: Path, host: str, workers: int) -> list[list[str]]:
    """`python -m locust`'s arguments for the master (or lone process) first, then the workers."""
    base = ["-f", str(profile), "--headless", "--only-summary", "--loglevel", "WARNING"]
    if workers <= 0:
        return [[*base, "--host", host]]
    port = free_port()
    master = [*base, "--host", host, "--master", "--master-bind-host", "127.0.0.1",
              "--master-bind-port", str(port), "--expect-workers", str(workers)]
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    return [master] + [worker] * workers


def run_load(profile: Path, host: str, duration: float, sample: dict[str, Any], workers: int = 0,
             during: Callable[[float], None] | None = None, max_requests: int | None = None,
             before: Callable[[], None] | None = None) -> LoadResult:
    """Run `profile` against `host` (a loopback URL) for `duration` seconds of load shape, and at
    most `max_requests` requests (default: MAX_RPS for the whole duration), whichever ends first.
    `before()` runs while Locust starts: Locust imports (1.2-1.3 s on a slow 2-core machine) and
    then waits at a gate until `before` has returned, so that time is not added to the run's.
    `during(elapsed)` is called about twice a second once the load runs, with the seconds since
    its shape's clock started."""
    max_requests = max_requests or int(MAX_RPS * duration)
    if not host.startswith(LOOPBACK):
        raise UserError(f"the lab only sends load to 127.0.0.1 or [::1], not {host}")
    with _scratch() as scratch:
        output, gate, started = scratch / "result.json", scratch / "gate", scratch / "started"
        env = {"PGLAB_LOAD_OUT": str(output), "PGLAB_LOAD_DURATION": str(duration),
               "PGLAB_LAB_SAMPLE": json.dumps(sample), "PGLAB_LOAD_MAX_REQUESTS": str(max_requests),
               GATE_VARIABLE: str(gate), STARTED_VARIABLE: str(started)}
        log = scratch / "locust.log"
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for args in locust_arguments(profile, host, workers):
                processes.append(spawn("locust", args, log, env))
            if before:
                before()
            gate.touch()
            deadline = time.monotonic() + duration + START_ALLOWANCE + STOP_GRACE
            while processes[0].poll() is None and time.monotonic() < deadline:
                if during and (began := _started_at(started)) is not None:
                    during(time.time() - began)
                with suppress(subprocess.TimeoutExpired):  # back at once when Locust is done, not up to 0.5 s later
                    processes[0].wait(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        finally:
            for process in processes:
                stop(process)
        if not output.exists():
            raise UserError(f"the load run wrote no results (locust: {last_lines(log) or 'no output'})")
        return LoadResult.read(output)


def _started_at(path: Path) -> float | None:
    """The wall-clock time the load's shape started, once Locust has written it."""
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None
