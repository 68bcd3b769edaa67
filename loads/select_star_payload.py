"""select_star_payload: readers poll the live feed of recent messages.

The feed shows five small columns; `SELECT *` also brings each message's 1.5 kB metadata, which
Postgres serialises, the socket carries and the driver parses, for every row of every refresh.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # a page, like the service's other reads
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (the feed itself); FALLBACK_RPS where
# nothing was measured (the campaign).
CAPACITY_PROBE = "/messages/recent"
FALLBACK_RPS = 70


class Reader(Paced, FastHttpUser):
    rate = 2  # an open feed refreshes twice a second

    @task
    def recent(self) -> None:
        self.client.get("/messages/recent", name="/messages/recent")


class Shape(WarmRampHold):
    users = sample.users_for(Reader.rate, FALLBACK_RPS)  # readers with the feed open
