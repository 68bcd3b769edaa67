"""fanout_loop: announcements are broadcast to every user while others read their conversations.

The naive broadcast makes one INSERT per recipient; a few broadcasts a second keep the service busy
with thousands of round trips and everyone else waits.
"""

from locust import constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250


class Broadcaster(FastHttpUser):
    weight = 1
    wait_time = constant_throughput(1)

    @task
    def broadcast(self) -> None:
        self.client.post("/broadcast", json={"kind": "announcement"}, name="/broadcast")


class Reader(FastHttpUser):
    weight = 2
    wait_time = constant_throughput(4)

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = 30
