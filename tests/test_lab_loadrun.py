"""The load runner: real Locust processes against real servers, results read back as data.

Two tiny local HTTP servers stand in for a service whose cost is known: one answers one request
at a time after sleeping (so requests queue when more arrive than it can answer), one streams its
answer in chunks. They show what the load runner measures, against what a closed loop would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_lab_service import TINY

from pglab.lab.core.errors import UserError
from pglab.lab.trial.capacity import closed_loop_rate, probe_requests
from pglab.lab.trial.loadrun import NEVER_SENT, LoadResult, percentile, profile_constants, profile_path, run_load
from pglab.lab.trial.seed import lab_dsn, seed
from pglab.lab.trial.service.process import running_service

SAMPLE = {"users": TINY.users, "conversations": TINY.conversations, "hot_conversations": TINY.hot_conversations,
          "search_terms": ["kaka"], "max_connections": 20}
SERVICE_SECONDS = 0.1  # the sleeping server's time per request: it answers 10 a second, one at a time
OFFERED_RPS = 20  # twice what it can answer
CHUNKS, CHUNK_SECONDS = 5, 0.1  # the streaming server: a chunk every 0.1 s, the first one at once


def answer_ok(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"ok")


class Sleeper(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        time.sleep(SERVICE_SECONDS)
        answer_ok(self)

    def log_message(self, *args: object) -> None:
        pass


class Streamer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for index in range(CHUNKS):
            if index:
                time.sleep(CHUNK_SECONDS)
            self.wfile.write(b"5\r\nchunk\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def local_server(server: HTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


PROFILE = '''
from locust import HttpUser, task
import requests
from pglab.loads import recorder
from pglab.loads.pacing import Paced, timed_stream
from pglab.loads.shapes import WarmRampHold

recorder.install()


class Caller(Paced, HttpUser):
    rate = {rate}

    def on_start(self):
        super().on_start()
        self.session = requests.Session()

    @task
    def call(self):
        {call}


class Shape(WarmRampHold):
    users = {users}
'''


def write_profile(directory: Path, rate: float, call: str, users: int = 1) -> Path:
    path = directory / "profile.py"
    path.write_text(PROFILE.format(rate=rate, call=call, users=users), encoding="utf-8")
    return path


@pytest.mark.parametrize("workers", [0, 1])
def test_latency_counts_from_the_schedule_so_queueing_shows(tmp_path: Path, workers: int) -> None:
    """One user offers 20 requests a second to a server that answers 10, one at a time. A closed
    loop would send the next request when the last one is answered and see 100 ms every time;
    measured from each request's slot, the latency grows with the queue (slot k waits k/20 s).
    With a worker, the slots it offered reach the master's results too."""
    profile = write_profile(tmp_path, OFFERED_RPS, 'self.client.get("/slow", name="/slow")')
    with local_server(HTTPServer(("127.0.0.1", 0), Sleeper)) as url:
        result = run_load(profile, url, duration=6, sample={}, workers=workers)
    hold = result.hold()
    service_ms = SERVICE_SECONDS * 1000
    answered, never_sent = hold.endpoints["GET /slow"], hold.endpoints[NEVER_SENT]
    assert answered["requests"] > 10 and answered["failures"] == 0
    # The queue the run ended with was never sent: failed requests, each as late as the end made it.
    assert never_sent["requests"] == never_sent["failures"] > 10
    assert hold.offered_rps == pytest.approx(OFFERED_RPS, rel=0.15)
    assert hold.achieved_rps <= 1.2 * (1 / SERVICE_SECONDS) < hold.offered_rps
    assert hold.p(0.5) > 5 * service_ms  # a closed loop measures ~100 ms here
    assert hold.endpoint_p("GET /slow", 0.99) >= hold.p(0.5)
    timeline = result.timeline()
    assert {"t", "rps", "p50_ms", "p95_ms", "p99_ms", "errors"} <= set(timeline[0])
    seconds = sorted(int(second) for second, names in result.buckets.items() if "GET /slow" in names)
    late = [result.summary(second, second + 1).endpoint_p("GET /slow", 0.5) for second in seconds]
    assert late[-1] > late[0]  # the queue, hence the latency of what was answered, grows through the run


class QueueingServer(HTTPServer):
    """One request at a time, with room in its listen queue for every waiting user (the default
    of 5 makes the kernel drop the rest's connection attempts, to be retried a second or more later)."""

    request_queue_size = 64


def test_answers_are_counted_when_they_arrive_so_a_queue_does_not_hide_throughput(tmp_path: Path) -> None:
    """Forty users wait in line for a server that answers 10 a second, one at a time, so an answer
    comes about 4 s after its request was sent. Counted by when they were sent, most requests sent
    in the hold are answered after it and missing; counted by when they arrived, the hold's answers
    are the server's throughput, which is the capacity a shedding fix is judged against."""
    profile = write_profile(tmp_path, 1, 'self.client.get("/slow", name="/slow")', users=40)
    with local_server(QueueingServer(("127.0.0.1", 0), Sleeper)) as url:
        hold = run_load(profile, url, duration=6, sample={}).hold()
    assert hold.answered_rps == pytest.approx(1 / SERVICE_SECONDS, rel=0.15)
    assert hold.achieved_rps < 0.6 * hold.answered_rps


def test_capacity_is_what_closed_loop_clients_get_answered() -> None:
    """The sleeping server answers one request at a time in 0.1 s: 10 a second, however many ask."""
    with local_server(HTTPServer(("127.0.0.1", 0), Sleeper)) as url:
        rate = closed_loop_rate(url, probe_requests("/slow"), clients=5, seconds=2)
    assert 0.8 / SERVICE_SECONDS <= rate <= 1.1 / SERVICE_SECONDS


class Writer(BaseHTTPRequestHandler):
    """Takes a JSON write (201) and notes what it was sent."""

    bodies: list[tuple[str, str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        Writer.bodies.append((self.command, self.path, body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_capacity_probe_can_write() -> None:
    """A probe given as (method, path, body) sends that write, and a 201 counts as an answer."""
    write = ("POST", "/conversations/1/messages", {"user_id": 7, "body": "hello"})
    with local_server(ThreadingHTTPServer(("127.0.0.1", 0), Writer)) as url:
        rate = closed_loop_rate(url, probe_requests(write), clients=2, seconds=1)
    assert rate > 0 and Writer.bodies
    assert all(sent == write for sent in Writer.bodies)


class Clock(BaseHTTPRequestHandler):
    """Answers at once and notes when each request arrived."""

    arrivals: list[float] = []

    def do_GET(self) -> None:  # noqa: N802
        Clock.arrivals.append(time.time())
        answer_ok(self)

    def log_message(self, *args: object) -> None:
        pass


def test_paced_users_started_together_arrive_spread_over_their_period(tmp_path: Path) -> None:
    """40 users started in the same instant, 2 requests a second each: 80 a second, spread
    evenly, is 4 per 50 ms. In lockstep they would arrive as 40 at once every half second."""
    profile = write_profile(tmp_path, 2, 'self.client.get("/now", name="/now")', users=40)
    Clock.arrivals = []
    with local_server(ThreadingHTTPServer(("127.0.0.1", 0), Clock)) as url:
        result = run_load(profile, url, duration=6, sample={})
    start, end = result.phase("hold")
    arrivals = sorted(at for at in Clock.arrivals if start + 0.5 <= at < end - 0.5)
    assert len(arrivals) > 100
    busiest = max(sum(1 for other in arrivals[index:index + 40] if other < at + 0.05)
                  for index, at in enumerate(arrivals))
    assert busiest <= 15, f"{busiest} of 40 users' requests arrived within 50 ms: lockstep"


@pytest.mark.parametrize("workers", [0, 1])
def test_locust_waits_at_its_gate_while_the_lab_is_busy_and_its_clock_starts_there(tmp_path: Path,
                                                                                      workers: int) -> None:
    """`before` (the lab's probes) runs while Locust starts: Locust sends nothing until it has
    returned, the load's clock starts then, and `during` counts from that start."""
    profile = write_profile(tmp_path, 2, 'self.client.get("/now", name="/now")')
    Clock.arrivals = []
    opened: list[float] = []
    elapsed: list[float] = []

    def before() -> None:
        time.sleep(3)  # longer than Locust takes to start
        opened.append(time.time())

    with local_server(ThreadingHTTPServer(("127.0.0.1", 0), Clock)) as url:
        result = run_load(profile, url, duration=5, sample={}, workers=workers, during=elapsed.append, before=before)
    assert Clock.arrivals and min(Clock.arrivals) >= opened[0]
    assert opened[0] <= result.started_at < opened[0] + 1
    assert elapsed and 0 <= min(elapsed) < 1  # from the load's start, not from Locust's


class SlotClock(BaseHTTPRequestHandler):
    """Answers at once and notes, for each request, how long before its scheduled slot it came."""

    early: list[float] = []

    def do_GET(self) -> None:  # noqa: N802
        SlotClock.early.append(float(self.headers["X-Slot"]) - time.time())
        answer_ok(self)

    def log_message(self, *args: object) -> None:
        pass


def test_no_request_is_sent_before_its_slot(tmp_path: Path) -> None:
    """A user's first request waits for its first slot like every later one. Sent at once when the
    user starts, it is counted in the second the user started while its slot is offered in the
    second the slot falls in: the hold's first second then offers a request answered before it, and
    a fix that answers everything looks as if it had done less work than it was offered."""
    call = 'self.client.get("/now", name="/now", headers={"X-Slot": repr(self._slot)})'
    profile = write_profile(tmp_path, 1, call, users=40)
    SlotClock.early = []
    with local_server(ThreadingHTTPServer(("127.0.0.1", 0), SlotClock)) as url:
        result = run_load(profile, url, duration=6, sample={})
    assert len(SlotClock.early) > 100
    assert max(SlotClock.early) < 0.005, f"{sum(e >= 0.005 for e in SlotClock.early)} requests came before their slot"
    hold = result.hold()
    assert abs(hold.requests - hold.offered) <= 2  # answered at once: the same slots, window edges aside


def test_streams_are_timed_to_their_last_chunk_and_first_apart(tmp_path: Path) -> None:
    call = 'timed_stream(self, self.session, "/stream", "/stream", json={"prompt": "hi"})'
    profile = write_profile(tmp_path, 1, call)
    with local_server(ThreadingHTTPServer(("127.0.0.1", 0), Streamer)) as url:
        result = run_load(profile, url, duration=6, sample={})
    hold = result.hold()
    whole_ms = (CHUNKS - 1) * CHUNK_SECONDS * 1000
    assert hold.requests >= 2 and hold.failures == 0
    assert hold.endpoint_p("POST /stream", 0.5) >= whole_ms  # to the last chunk
    assert hold.endpoint_first_chunk_p("POST /stream", 0.5) < whole_ms / 2  # to the first one
    assert hold.p(0.5) == hold.endpoint_first_chunk_p("POST /stream", 0.5)  # the SLO judges the first chunk


def test_percentiles_follow_the_histogram() -> None:
    histogram = {1: 90, 10: 9, 500: 1}
    assert percentile(histogram, 0.5) == 1
    assert percentile(histogram, 0.95) == 10
    assert percentile(histogram, 0.99) == 10
    assert percentile(histogram, 1.0) == 500
    assert percentile({}, 0.99) == 0


def test_summaries_keep_only_the_window_asked_for() -> None:
    cell = {"count": 10, "failures": 1, "times": {"5": 9, "700": 1}, "errors": {"HTTPError 503": 1}}
    result = LoadResult(started_at=1000.0, phases=[{"name": "hold", "start": 2, "end": 4}],
                        buckets={"1000": {"GET /a": cell}, "1002": {"GET /a": cell}, "1003": {"GET /b": cell}},
                        offered={"1001": 30, "1002": 30, "1003": 20})
    hold = result.hold()
    assert (hold.requests, hold.failures, hold.rps) == (20, 2, 10.0)
    assert (hold.offered_rps, hold.achieved_rps) == (25.0, 9.0)
    assert set(hold.endpoints) == {"GET /a", "GET /b"} and hold.errors == {"HTTPError 503": 2}
    assert hold.p(0.95) == 700
    assert [row["requests"] for row in result.timeline()] == [10, 0, 10, 10]


def test_profiles_are_read_without_importing_locust() -> None:
    assert profile_constants("pool_exhaustion")["SLO_P99_MS"] == 1000
    with pytest.raises(UserError, match="no load profile"):
        profile_path("no_such_profile")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bounded_run_measures_every_window(pg_dsn: str, workers: int) -> None:
    seed(pg_dsn, TINY)
    with running_service(lab_dsn(pg_dsn), frozenset()) as url:
        result = run_load(profile_path("ceiling"), url, duration=5, sample=SAMPLE, workers=workers)
    hold = result.hold()
    assert result.distributed is (workers > 0)
    assert hold.requests > 50 and hold.failures == 0
    assert set(hold.endpoints) == {"GET /health"}
    assert 0 < hold.p(0.5) <= hold.p(0.99)
    assert hold.offered_rps == pytest.approx(hold.rps, rel=0.05)  # closed-loop users offer what they send
    assert sum(row["requests"] for row in result.timeline()) >= hold.requests


def test_a_run_stops_after_its_request_budget(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    with running_service(lab_dsn(pg_dsn), frozenset()) as url:
        began = time.monotonic()
        result = run_load(profile_path("ceiling"), url, duration=30, sample=SAMPLE, max_requests=300)
        took = time.monotonic() - began
    requests = result.summary().requests
    assert 300 <= requests < 3000 and took < 30  # the shape alone would run for 30 s, plus start-up


def test_load_goes_to_loopback_only() -> None:
    with pytest.raises(UserError, match="127.0.0.1"):
        run_load(profile_path("ceiling"), "http://example.com:80", duration=5, sample=SAMPLE)
