"""n_plus_one: readers open conversations, each page showing 50 messages with their authors.

The naive page makes 51 round trips; at this rate the service spends its time waiting on them.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250


class Reader(Paced, FastHttpUser):
    rate = 4

    @task
    def read_conversation(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}", name="/conversations/[id]")


class Shape(WarmRampHold):
    users = 40
