"""non_sargable_predicate: people open the usage page for one of the last thirty days.

`created_at::date = $1` cannot use the index on created_at, so every request reads and casts
every message to count one day's; the rewritten range reads that day's messages alone.
"""

import random
from datetime import date, timedelta

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.lab.trial.seed import EPOCH
from pglab.loads import recorder
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # a page of the web app: a quarter of a second at the 99th percentile
SEEDED_DAYS = 30  # the seed spreads the messages over the thirty days before its epoch
LAST_SEEDED_DAY = date.fromisoformat(EPOCH[:10]) - timedelta(days=1)


class Viewer(Paced, FastHttpUser):
    rate = 2

    @task
    def daily_usage(self) -> None:
        day = LAST_SEEDED_DAY - timedelta(days=random.randrange(SEEDED_DAYS))
        self.client.get(f"/usage/daily?day={day.isoformat()}", name="/usage/daily")


class Shape(WarmRampHold):
    users = 20
