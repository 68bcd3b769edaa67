"""The campaign's steady background: a few users browsing, under every trial's own load.

Not an anti-pattern's profile (no catalogue entry has this name): it keeps ordinary traffic on the
service while a trial turns up one kind of load, so a trial's damage, and a fix's side effects, also
show on requests that have nothing to do with it. Its rate comes from the plan (`background_rate`).
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
USERS = 4


class Browser(Paced, FastHttpUser):
    rate = float(sample.sample().get("background_rate", 2)) / USERS

    @task
    def browse(self) -> None:
        if random.random() < 0.5:
            self.client.get(f"/users/{sample.user()}/conversations", name="/users/[id]/conversations")
        else:
            self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = USERS
