"""unbounded_results: readers open conversations' history, newest page first.

Most conversations are short and any page of them is cheap; one open in five is of a hot
conversation (`sample.conversation()`), whose naive page drags its whole history (about 24,000
messages at small scale) out of Postgres and through Python to show 50 of them.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
# Opening a conversation is interactive: 250 ms is the lab's usual budget for a page a person waits
# for (the same as missing_index's and n_plus_one's message pages).
SLO_P99_MS = 250
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (one hot conversation in five, as
# the readers open them); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/conversations/1/history", "/conversations/101/history", "/conversations/202/history",
    "/conversations/303/history", "/conversations/404/history", "/conversations/3/history",
    "/conversations/606/history", "/conversations/707/history", "/conversations/808/history",
    "/conversations/909/history", "/conversations/5/history", "/conversations/1111/history",
    "/conversations/1212/history", "/conversations/1313/history", "/conversations/1414/history"
)
FALLBACK_RPS = 60


class Reader(Paced, FastHttpUser):
    rate = 2  # conversations opened per second per reader

    @task
    def open_history(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/history", name="/conversations/[id]/history")


class Shape(WarmRampHold):
    users = sample.users_for(Reader.rate, FALLBACK_RPS)
