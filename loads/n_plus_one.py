"""n_plus_one: readers open conversations, each page showing 50 messages with their authors.

The naive page makes 51 round trips; at a rate the fixed page takes in its stride, the service
spends its time waiting on them.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (one hot conversation in five, as
# the readers open them); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/conversations/1", "/conversations/101", "/conversations/202", "/conversations/303", "/conversations/404",
    "/conversations/3", "/conversations/606", "/conversations/707", "/conversations/808", "/conversations/909",
    "/conversations/5", "/conversations/1111", "/conversations/1212", "/conversations/1313", "/conversations/1414"
)
FALLBACK_RPS = 160


class Reader(Paced, FastHttpUser):
    rate = 4

    @task
    def read_conversation(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}", name="/conversations/[id]")


class Shape(WarmRampHold):
    users = sample.users_for(Reader.rate, FALLBACK_RPS)
