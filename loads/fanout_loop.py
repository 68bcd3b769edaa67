"""fanout_loop: announcements are broadcast to every user while others read their conversations.

The broadcast rate is set so that the notifications asked for stay the same at every scale
(BROADCAST_ROWS_PER_S): easy for one INSERT ... SELECT per broadcast, far beyond a loop of
single-row INSERTs, which keeps a pooled connection and the service busy with thousands of round
trips per broadcast while everyone else waits.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
USERS = 30
BROADCASTERS = USERS // 3  # the Broadcaster's share of the users, by weight
BROADCAST_ROWS_PER_S = 10_000


class Broadcaster(Paced, FastHttpUser):
    weight = 1
    rate = BROADCAST_ROWS_PER_S / sample.sample()["users"] / BROADCASTERS

    @task
    def broadcast(self) -> None:
        self.client.post("/broadcast", json={"kind": "announcement"}, name="/broadcast")


class Reader(Paced, FastHttpUser):
    weight = 2
    rate = 4

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = USERS
