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


class Reader(Paced, FastHttpUser):
    rate = 2  # conversations opened per second per reader: 60 a second in all, a modest chat service's peak

    @task
    def open_history(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/history", name="/conversations/[id]/history")


class Shape(WarmRampHold):
    users = 30
