"""Load without coordinated omission: each user keeps a schedule, and latency counts from it.

A closed-loop user (send, wait for the answer, pause, send again) slows down with the service: a
response that takes 3 s delays the next request by 3 s, and the users who would have arrived in
those 3 s are never measured. That is coordinated omission, and it hides exactly the harm the lab
must show. A `Paced` user instead owns a schedule of slots `rate` per second, fixed when it starts.
It sends each request at its slot, or at once when it is late, and the recorder counts the
request's latency from the slot, not from the moment it could finally be sent, the way wrk2 does.
Every slot is counted as offered, also the ones still waiting when the run ends, so the offered
rate is the schedule's and the achieved rate is what the service answered. The slots a user never
got to send because it still waited for an earlier answer when the run ended are failed requests,
each as late as the run's end made it.

`timed_stream` times a streamed answer to its last chunk, and to its first chunk apart.

Only Locust processes import this module (the profiles in this folder do).
"""

from __future__ import annotations

import random
import time
from typing import Any, ClassVar

import gevent
import requests
from locust import User

from pglab.loads import recorder

STREAM_TIMEOUT = 60.0  # seconds; the lab's runs are shorter, so a stream never outlives its run


class Paced:
    """Mix in before the Locust user class: `class Reader(Paced, FastHttpUser): rate = 4`.

    One request per task: the slot is the task's, and a second request in the same task would
    count the first one's time as its own queueing delay."""

    rate: ClassVar[float] = 1.0  # slots per second, per user
    _slot: float

    def on_start(self) -> None:
        """The first slot falls at a random point of the user's first period. Locust starts a
        second's worth of users at one instant, and users that all start their schedules then
        send in lockstep: 65 users at 2 a second arrive as 65 at once every half second, not as
        130 a second, and the service is judged on bursts that the profile never meant to offer
        (one that sheds a burst's excess then idles until the next, one that queues it does not).
        The first request waits for that slot too: sent at once, it would be counted in the second
        the user started while its slot is offered in a later one, and a service that answers
        everything on time would seem to have done less than it was offered."""
        self._slot = time.time() + random.random() / self.rate
        gevent.sleep(max(0.0, self._slot - time.time()))

    def context(self) -> dict[str, Any]:
        """Read by Locust for every request; the recorder measures latency from this slot."""
        return {"scheduled": self._slot}

    def wait_time(self) -> float:
        """After a task: its slot was offered; wait for the next one, or not at all when late."""
        recorder.offer(self._slot)
        self._slot += 1.0 / self.rate
        return max(0.0, self._slot - time.time())

    def on_stop(self) -> None:
        """The run ends: the slot in flight and every slot the user fell behind were offered too.
        The slots behind it were never sent, so they failed; the one in flight may still have been
        on time (a stream half read, say), so it is not judged."""
        now = time.time()
        in_flight = True
        while self._slot <= now:
            recorder.offer(self._slot)
            if not in_flight:
                recorder.never_sent(self._slot, now)
            in_flight = False
            self._slot += 1.0 / self.rate


def timed_stream(user: User, session: requests.Session, path: str, name: str, **kwargs: Any) -> None:
    """POST `path` and read the streamed answer to its end, reporting one request to Locust: its
    response time is to the last chunk, and `first_chunk_ms` in its context to the first one.
    (Locust's own clients stop the clock at the headers when asked to stream.)"""
    context = user.context()
    start = time.time()
    began = time.perf_counter()
    first_chunk_ms: float | None = None
    length = 0
    response: requests.Response | None = None
    error: Exception | None = None
    try:
        response = session.post(f"{user.host}{path}", stream=True, timeout=STREAM_TIMEOUT, **kwargs)
        with response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=None):
                if first_chunk_ms is None:
                    first_chunk_ms = (time.perf_counter() - began) * 1000
                length += len(chunk)
    except Exception as failure:  # refused, cut short, or an error status: a failed request
        error = failure
    total_ms = (time.perf_counter() - began) * 1000
    context["first_chunk_ms"] = first_chunk_ms if first_chunk_ms is not None else total_ms
    user.environment.events.request.fire(request_type="POST", name=name, response_time=total_ms,
                                         response_length=length, exception=error, context=context,
                                         start_time=start, url=path, response=response)
