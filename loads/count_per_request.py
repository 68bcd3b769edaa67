"""count_per_request: every page view fetches the header with the unread badge.

Requests come from users in proportion to their notifications (the seed's law: user k makes a
share of about 1 / (k ln users) of them), since the users with the most notifications are the
most active ones; so the busiest users, whose badge costs the most to count, ask for it most.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
# The header is on every page, before anything else shows: a quarter of a second at p99 is already
# a sluggish app (the lab's default SLO).
SLO_P99_MS = 250
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (users spread by the same activity
# law at small scale); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/users/1/header", "/users/2/header", "/users/5/header", "/users/11/header", "/users/22/header",
    "/users/44/header", "/users/89/header", "/users/177/header", "/users/354/header", "/users/707/header"
)
FALLBACK_RPS = 120


def active_user() -> int:
    """A user drawn by activity: floor((users + 1) ^ u) for u uniform, the seed's notification law."""
    users = sample.sample()["users"]
    return min(users, int((users + 1) ** random.random()))


class PageView(Paced, FastHttpUser):
    rate = 4  # page views a second per simulated client

    @task
    def header(self) -> None:
        self.client.get(f"/users/{active_user()}/header", name="/users/[id]/header")


class Shape(WarmRampHold):
    users = sample.users_for(PageView.rate, FALLBACK_RPS)
