"""correlated_subquery: readers open the token history (running totals) of conversations.

Cold conversations cost little either way; the hot ones make the per-row subquery read the
conversation once per message shown.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250


class Reader(Paced, FastHttpUser):
    rate = 1

    @task
    def token_history(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/tokens", name="/conversations/[id]/tokens")


class Shape(WarmRampHold):
    users = 10
