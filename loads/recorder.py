"""Every request's outcome, bucketed by second and endpoint, written as JSON when Locust quits.

Locust's own CSV and JSON summarise the whole run; the lab needs the hold phase alone, window by
window. Each process adds its requests to one-second buckets (count, failures, a histogram of
response times rounded the way Locust rounds them, error messages); workers ship their buckets to
the master with every report, and the master (or the lone local process) writes them, with the
phases of the load shape, to the file named by PGLAB_LOAD_OUT.

Only Locust processes import this module (it is imported by the profiles in this folder).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

OUTPUT_VARIABLE = "PGLAB_LOAD_OUT"
Buckets = dict[str, dict[str, dict[str, Any]]]  # second -> endpoint name -> {count, failures, times, errors}

_buckets: Buckets = defaultdict(dict)
_started_at: list[float] = []


def rounded_ms(response_time: float) -> int:
    """Locust's own rounding: exact below 100 ms, then 2 then 3 significant digits."""
    if response_time < 100:
        return round(response_time)
    if response_time < 1000:
        return int(round(response_time, -1))
    return int(round(response_time, -2))


def _cell(buckets: Buckets, second: str, name: str) -> dict[str, Any]:
    return buckets[second].setdefault(name, {"count": 0, "failures": 0, "times": {}, "errors": {}})


def _on_request(request_type: str, name: str, response_time: float, exception: Exception | None = None,
                start_time: float | None = None, **kwargs: Any) -> None:
    second = str(int(start_time if start_time is not None else time.time()))
    cell = _cell(_buckets, second, f"{request_type} {name}")
    cell["count"] += 1
    key = str(rounded_ms(response_time))
    cell["times"][key] = cell["times"].get(key, 0) + 1
    if exception is not None:
        cell["failures"] += 1
        message = _describe(exception, kwargs.get("response"))
        cell["errors"][message] = cell["errors"].get(message, 0) + 1


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


def merge(into: Buckets, other: Buckets) -> None:
    for second, names in other.items():
        for name, cell in names.items():
            target = _cell(into, second, name)
            target["count"] += cell["count"]
            target["failures"] += cell["failures"]
            for field in ("times", "errors"):
                for key, count in cell[field].items():
                    target[field][key] = target[field].get(key, 0) + count


def _take() -> Buckets:
    taken = dict(_buckets)
    _buckets.clear()
    return taken


def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data["pglab_buckets"] = _take()


def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    merge(_buckets, data.get("pglab_buckets", {}))


def _on_test_start(environment: Environment, **kwargs: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        _started_at.append(time.time())


def _on_quitting(environment: Environment, **kwargs: Any) -> None:
    path = os.environ.get(OUTPUT_VARIABLE)
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    shape = environment.shape_class
    phases = shape.phases() if shape is not None and hasattr(shape, "phases") else []
    result = {"started_at": _started_at[0] if _started_at else None, "phases": phases,
              "distributed": isinstance(environment.runner, MasterRunner), "buckets": dict(_buckets)}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(result, out)


def install() -> None:
    """Attach the recorder to Locust's events; each profile calls this once at import."""
    events.request.add_listener(_on_request)
    events.report_to_master.add_listener(_on_report_to_master)
    events.worker_report.add_listener(_on_worker_report)
    events.test_start.add_listener(_on_test_start)
    events.quitting.add_listener(_on_quitting)
