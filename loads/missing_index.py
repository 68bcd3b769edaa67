"""missing_index: readers page through conversations' latest messages.

Without an index on messages.conversation_id every page is a sequential scan of the whole table,
so the offered rate, comfortable for an indexed lookup, saturates the server.
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
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = 40
