"""Every request's outcome, bucketed by second and endpoint, written as JSON when Locust quits.

Locust's own CSV and JSON summarise the whole run; the lab needs the hold phase alone, window by
window. Each process adds its requests to one-second buckets (count, failures, a histogram of
response times rounded the way Locust rounds them, error messages); workers ship their buckets to
the master with every report, and the master (or the lone local process) writes them, with the
phases of the load shape, to the file named by PGLAB_LOAD_OUT.

Latency counts from the request's scheduled slot when its user is `pacing.Paced` (coordinated
omission: see that module), so a request that waited for its user to be free carries the wait.
A streamed answer (`pacing.timed_stream`) is timed to its last chunk, and its first chunk goes to
a histogram of its own. The offered load is bucketed by the second each slot was scheduled for;
a request from an unpaced user was offered when it was sent. Successful answers are also counted
by the second they arrived (`answered`): a side's throughput however late its answers, which the
send-time buckets do not show when answers take longer than the window.

A run also stops itself after PGLAB_LOAD_MAX_REQUESTS requests, whatever its shape says. It starts
when the lab opens its gate (a file): Locust is started while the lab still asks its probes.

Only Locust processes import this module (it is imported by the profiles in this folder).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from pglab.lab.trial.loadrun import GATE_VARIABLE, NEVER_SENT, STARTED_VARIABLE

OUTPUT_VARIABLE = "PGLAB_LOAD_OUT"
MAX_REQUESTS_VARIABLE = "PGLAB_LOAD_MAX_REQUESTS"
# second -> endpoint name -> {count, failures, times, first_chunk, errors}
Buckets = dict[str, dict[str, dict[str, Any]]]
GATE_WAIT_S = 120.0  # the longest Locust waits for the lab's go (the lab stops it sooner if it fails)
NEVER_SENT_ERROR = "never sent: its user still waited for an earlier answer when the run ended"

_buckets: Buckets = defaultdict(dict)
_offered: dict[str, int] = defaultdict(int)  # scheduled second -> slots offered
_answered: dict[str, int] = defaultdict(int)  # second an answer arrived -> successful answers
_started_at: list[float] = []
_environment: list[Environment] = []
_seen = {"requests": 0, "stopping": False}  # this process's requests (the master counts its workers')


def rounded_ms(response_time: float) -> int:
    """Locust's own rounding: exact below 100 ms, then 2 then 3 significant digits."""
    if response_time < 100:
        return round(response_time)
    if response_time < 1000:
        return int(round(response_time, -1))
    return int(round(response_time, -2))


def _cell(buckets: Buckets, second: str, name: str) -> dict[str, Any]:
    return buckets[second].setdefault(name, {"count": 0, "failures": 0, "times": {}, "first_chunk": {},
                                             "errors": {}})


def _add(histogram: dict[str, int], milliseconds: float) -> None:
    key = str(rounded_ms(milliseconds))
    histogram[key] = histogram.get(key, 0) + 1


def offer(at: float) -> None:
    """One slot of a paced user's schedule, offered at `at` (epoch seconds)."""
    _offered[str(int(at))] += 1


def never_sent(at: float, now: float) -> None:
    """A slot whose user was still waiting for an earlier answer when the run ended: a failed
    request of the service, at least `now - at` late. Left out, a service that hangs every user
    would show no latency at all, since nothing it was asked ever came back to be measured."""
    cell = _cell(_buckets, str(int(at)), NEVER_SENT)
    cell["count"] += 1
    cell["failures"] += 1
    _add(cell["times"], (now - at) * 1000)
    cell["errors"][NEVER_SENT_ERROR] = cell["errors"].get(NEVER_SENT_ERROR, 0) + 1
    _count(1)


def _on_request(request_type: str, name: str, response_time: float, exception: Exception | None = None,
                start_time: float | None = None, context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    started = start_time if start_time is not None else time.time()
    scheduled = (context or {}).get("scheduled")
    if scheduled is None:
        offer(started)  # an unpaced user offers what it sends
        queued_ms = 0.0
    else:
        queued_ms = max(0.0, (started - float(scheduled)) * 1000)
    cell = _cell(_buckets, str(int(started)), f"{request_type} {name}")
    cell["count"] += 1
    _add(cell["times"], queued_ms + response_time)
    first_chunk_ms = (context or {}).get("first_chunk_ms")
    if first_chunk_ms is not None:
        _add(cell["first_chunk"], queued_ms + float(first_chunk_ms))
    if exception is None:
        _answered[str(int(started + response_time / 1000))] += 1
    else:
        cell["failures"] += 1
        message = _describe(exception, kwargs.get("response"))
        cell["errors"][message] = cell["errors"].get(message, 0) + 1
    _count(1)


def _describe(exception: Exception, response: Any) -> str:
    """The status and the service's own error text, not the URL: one line per kind of failure."""
    status = getattr(response, "status_code", None)
    if status:
        try:
            reason = response.json().get("error", "")
        except Exception:  # a body that is not the service's JSON error
            reason = ""
        return f"HTTP {status} {reason}".strip()[:160]
    return f"{type(exception).__name__}: {exception}"[:160]


def _count(requests: int) -> None:
    """Stop the whole run once it has made PGLAB_LOAD_MAX_REQUESTS requests (local or master)."""
    _seen["requests"] += requests
    limit = int(os.environ.get(MAX_REQUESTS_VARIABLE, "0") or 0)
    if not limit or _seen["requests"] < limit or _seen["stopping"] or not _environment:
        return
    runner = _environment[0].runner
    if runner is not None and not isinstance(runner, WorkerRunner):
        _seen["stopping"] = True
        gevent.spawn(runner.quit)


def merge(into: Buckets, other: Buckets) -> None:
    for second, names in other.items():
        for name, cell in names.items():
            target = _cell(into, second, name)
            target["count"] += cell["count"]
            target["failures"] += cell["failures"]
            for field in ("times", "first_chunk", "errors"):
                for key, count in cell.get(field, {}).items():
                    target[field][key] = target[field].get(key, 0) + count


def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data["pglab_buckets"] = dict(_buckets)
    data["pglab_offered"] = dict(_offered)
    data["pglab_answered"] = dict(_answered)
    _buckets.clear()
    _offered.clear()
    _answered.clear()


def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    buckets = data.get("pglab_buckets", {})
    merge(_buckets, buckets)
    for second, count in data.get("pglab_offered", {}).items():
        _offered[second] += count
    for second, count in data.get("pglab_answered", {}).items():
        _answered[second] += count
    _count(sum(cell["count"] for names in buckets.values() for cell in names.values()))


def _on_init(environment: Environment, **kwargs: Any) -> None:
    """Locust is started while the lab still asks its probes: it waits here, imported and ready,
    until the lab opens the gate (`loadrun.run_load`), and its load's clock starts then."""
    gate = os.environ.get(GATE_VARIABLE)
    if not gate or isinstance(environment.runner, WorkerRunner):
        return
    deadline = time.monotonic() + GATE_WAIT_S
    while not os.path.exists(gate):
        if time.monotonic() > deadline:  # an error in an init listener ends Locust
            raise RuntimeError(f"the lab did not open the gate ({gate}) within {GATE_WAIT_S:g} s")
        gevent.sleep(0.005)


def _on_test_start(environment: Environment, **kwargs: Any) -> None:
    _environment[:] = [environment]
    if not isinstance(environment.runner, WorkerRunner):
        _started_at.append(time.time())
        if (path := os.environ.get(STARTED_VARIABLE)) and len(_started_at) == 1:
            with open(f"{path}.part", "w", encoding="utf-8") as out:  # renamed whole: never read half-written
                out.write(repr(_started_at[0]))
            os.replace(f"{path}.part", path)


def _on_quitting(environment: Environment, **kwargs: Any) -> None:
    path = os.environ.get(OUTPUT_VARIABLE)
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    shape = environment.shape_class
    phases = shape.phases() if shape is not None and hasattr(shape, "phases") else []
    result = {"started_at": _started_at[0] if _started_at else None, "phases": phases,
              "distributed": isinstance(environment.runner, MasterRunner), "buckets": dict(_buckets),
              "offered": dict(_offered), "answered": dict(_answered)}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(result, out)


def _on_quit(exit_code: int, **kwargs: Any) -> None:
    """The results are written: leave without the interpreter's final garbage collection. After a
    saturated run (users killed mid-request) that collection took 1.5-2 s, a wait added to every
    naive side for nothing. Not a worker: its last report to the master may still sit in ZeroMQ's
    queue, which only a normal exit flushes."""
    if not _environment or isinstance(_environment[0].runner, WorkerRunner):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def install() -> None:
    """Attach the recorder to Locust's events; each profile calls this once at import."""
    events.request.add_listener(_on_request)
    events.report_to_master.add_listener(_on_report_to_master)
    events.worker_report.add_listener(_on_worker_report)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.quitting.add_listener(_on_quitting)
    events.quit.add_listener(_on_quit)
