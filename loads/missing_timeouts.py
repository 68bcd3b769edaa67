"""missing_timeouts: readers list their conversations while members share links in the busy ones.

Links are shared in the hot conversations (the busy team channels); now and then one points to
the preview host that hangs. That is the same schedule on both sides: the
harm is how long the abandoned transaction keeps its lock, which the session settings decide.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 500  # a list page: a client that waits more than a second or two gives up
# The shares whose link preview hangs fail on both sides (rolled back after the client's 5 s
# timeout): about one request in 90 by this schedule, so the budget is two in a hundred.
ERROR_BUDGET = 0.02
HANGING_SHARE = 0.06  # share of links that point to the hanging host


class Reader(Paced, FastHttpUser):
    rate = 2
    weight = 3

    @task
    def list_conversations(self) -> None:
        self.client.get(f"/users/{sample.user()}/conversations", name="/users/[id]/conversations")


class Sharer(Paced, FastHttpUser):
    rate = 2
    weight = 1

    @task
    def share_link(self) -> None:
        conversation = random.randint(1, sample.sample()["hot_conversations"])
        link = "http://slow.example/agenda" if random.random() < HANGING_SHARE else "http://fast.example/agenda"
        self.client.post(f"/conversations/{conversation}/links", json={"user_id": sample.user(), "url": link},
                         name="/conversations/[id]/links")


class Shape(WarmRampHold):
    users = 16
