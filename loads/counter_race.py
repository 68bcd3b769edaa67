"""counter_race: a few busy users post messages concurrently, each post charging their account.

Concurrent posts by the same user overlap between the naive path's read and write of the balance.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
BUSY_USERS = 5


class Poster(Paced, FastHttpUser):
    rate = 5

    @task
    def post(self) -> None:
        self.client.post(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages",
                         json={"user_id": random.randint(1, BUSY_USERS), "body": "tokens for everyone here"})


class Shape(WarmRampHold):
    users = 30
