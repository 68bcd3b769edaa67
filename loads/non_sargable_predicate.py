"""non_sargable_predicate: people open the usage page for one of the last thirty days.

`created_at::date = $1` cannot use the index on created_at, so every request reads and casts
every message to count one day's; the rewritten range reads that day's messages alone.
"""

import random
from datetime import date, timedelta

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.lab.trial.seed import EPOCH
from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # a page of the web app: a quarter of a second at the 99th percentile
SEEDED_DAYS = 30  # the seed spreads the messages over the thirty days before its epoch
LAST_SEEDED_DAY = date.fromisoformat(EPOCH[:10]) - timedelta(days=1)
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (days across the seeded month); FALLBACK_RPS where
# nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/usage/daily?day=2025-12-02", "/usage/daily?day=2025-12-06", "/usage/daily?day=2025-12-10",
    "/usage/daily?day=2025-12-14", "/usage/daily?day=2025-12-18", "/usage/daily?day=2025-12-22",
    "/usage/daily?day=2025-12-26", "/usage/daily?day=2025-12-31"
)
FALLBACK_RPS = 40


class Viewer(Paced, FastHttpUser):
    rate = 2

    @task
    def daily_usage(self) -> None:
        day = LAST_SEEDED_DAY - timedelta(days=random.randrange(SEEDED_DAYS))
        self.client.get(f"/usage/daily?day={day.isoformat()}", name="/usage/daily")


class Shape(WarmRampHold):
    users = sample.users_for(Viewer.rate, FALLBACK_RPS)
