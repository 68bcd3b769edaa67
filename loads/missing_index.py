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
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (one hot conversation in five, as
# the readers open them); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/conversations/1/messages", "/conversations/101/messages", "/conversations/202/messages",
    "/conversations/303/messages", "/conversations/404/messages", "/conversations/3/messages",
    "/conversations/606/messages", "/conversations/707/messages", "/conversations/808/messages",
    "/conversations/909/messages", "/conversations/5/messages", "/conversations/1111/messages",
    "/conversations/1212/messages", "/conversations/1313/messages", "/conversations/1414/messages"
)
FALLBACK_RPS = 160


class Reader(Paced, FastHttpUser):
    rate = 4

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = sample.users_for(Reader.rate, FALLBACK_RPS)
