"""long_poll_connection: users with the app open keep a long poll for new notifications in flight,
while others read their conversations.

ONLINE clients, twice the service's pool of ten connections, each ask "anything newer than the
last notification I have? wait up to WAIT seconds" and ask again as soon as they have an answer
(a long-poll client is closed-loop by nature). Nothing new arrives during the run, so each poll
is meant to take its whole wait; what the service adds to that is its own delay, and that is
what the SLO judges of a poll (an empty answer's time beyond its wait, a non-empty answer's
whole time, reported as `first_chunk_ms` the way a stream's first chunk is). A client learns
where to start polling from its notifications page, opened once as it starts (before the hold, and
not judged: that page's speed is the notifications indexes' business, not this entry's). The
readers are paced and judged whole: their page needs a pooled connection for a few milliseconds.
The users with the app open are the busiest ones (the seed gives users 1, 2, 3... the most
notifications), whose latest notifications are found at once.
"""

import random
import time

import requests
from locust import HttpUser, constant, task

from pglab.loads import recorder, sample
from pglab.loads.pacing import STREAM_TIMEOUT, Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
ONLINE = 20  # long-polling clients: twice the service's pool (ServiceConfig.pool_size = 10)
READERS = 20
WAIT = 25.0  # seconds a poll may wait: below the 30 s idle timeout of common proxies


class OnlineUser(HttpUser):
    weight = ONLINE
    wait_time = constant(0)

    def on_start(self) -> None:
        self.session = requests.Session()
        self.user_id = random.randint(1, ONLINE)
        self.after = 0
        page = self.session.get(f"{self.host}/users/{self.user_id}/notifications", timeout=STREAM_TIMEOUT)
        if page.ok:  # the page shows the latest notifications: poll for anything newer
            self.after = max((note["id"] for note in page.json()), default=0)

    @task
    def poll(self) -> None:
        path = f"/users/{self.user_id}/notifications/poll?after={self.after}&wait={WAIT:g}"
        context = self.context()
        start, began = time.time(), time.perf_counter()
        error: Exception | None = None
        response = None
        found: list[dict[str, int]] = []
        try:
            response = self.session.get(f"{self.host}{path}", timeout=STREAM_TIMEOUT)
            response.raise_for_status()
            found = response.json()
        except Exception as failure:  # refused, timed out, or an error status (503 when no connection)
            error = failure
        total_ms = (time.perf_counter() - began) * 1000
        self.after = max([self.after, *(note["id"] for note in found)])
        context["first_chunk_ms"] = total_ms if found or error else max(0.0, total_ms - WAIT * 1000)
        self.environment.events.request.fire(request_type="GET", name="/users/[id]/notifications/poll",
                                             response_time=total_ms, response_length=len(found),
                                             exception=error, context=context, start_time=start,
                                             url=path, response=response)


class Reader(Paced, HttpUser):
    weight = READERS
    rate = 2

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = ONLINE + READERS
