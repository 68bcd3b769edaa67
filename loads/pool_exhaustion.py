"""pool_exhaustion: more concurrent readers than the server has connections, with no pause.

Sized from the server's max_connections so that a service opening one connection per request
asks for more than the server can give, wherever it runs. These users are closed-loop on purpose
(not `pacing.Paced`): the harm is how many requests are in flight at once, so each user sends its
next request as soon as it has an answer, and what it sends is what it offered.
"""

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 1000  # the fixed pool queues this many readers; the invariant at stake is refusals


class Reader(FastHttpUser):
    wait_time = constant(0)

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = int(sample.sample()["max_connections"] * 1.5)
