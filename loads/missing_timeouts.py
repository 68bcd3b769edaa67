"""missing_timeouts: readers list their conversations while members share links in the busy ones.

Links are shared in the busiest conversations (team channels); one member keeps sharing
links to the preview host that hangs, on a fixed schedule, so both sides face the same outage:
the harm is how long the abandoned transaction keeps its lock, which the timeouts decide.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 500  # a list page: a client that waits more than a second or two gives up
FAST_LINK, HANGING_LINK = "http://fast.example/agenda", "http://slow.example/agenda"


class Reader(Paced, FastHttpUser):
    rate = 2
    weight = 2

    @task
    def list_conversations(self) -> None:
        self.client.get(f"/users/{sample.user()}/conversations", name="/users/[id]/conversations")


class Sharer(Paced, FastHttpUser):
    rate = 2
    weight = 1

    @task
    def share_link(self) -> None:
        self.client.post(f"/conversations/{hot_conversation()}/links",
                         json={"user_id": sample.user(), "url": FAST_LINK},
                         name="/conversations/[id]/links")


class HangingSharer(Paced, FastHttpUser):
    """Every two seconds, a link whose preview host hangs: a few outages a run, on a schedule."""

    rate = 0.5
    fixed_count = 1

    @task
    def share_link(self) -> None:
        self.client.post(f"/conversations/{hot_conversation()}/links",
                         json={"user_id": sample.user(), "url": HANGING_LINK},
                         name="/conversations/[id]/links")


def hot_conversation() -> int:
    """Links go to the two busiest channels: sharing concentrates where the team talks."""
    return random.randint(1, min(2, sample.sample()["hot_conversations"]))


class Shape(WarmRampHold):
    users = 19  # 12 readers, 6 sharers, the hanging sharer
