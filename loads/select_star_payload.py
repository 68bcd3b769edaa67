"""select_star_payload: readers poll the live feed of recent messages.

The feed shows five small columns; `SELECT *` also brings each message's 1.5 kB metadata, which
Postgres serialises, the socket carries and the driver parses, for every row of every refresh.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # a page, like the service's other reads


class Reader(Paced, FastHttpUser):
    rate = 2  # an open feed refreshes twice a second

    @task
    def recent(self) -> None:
        self.client.get("/messages/recent", name="/messages/recent")


class Shape(WarmRampHold):
    users = 35  # readers with the feed open: 70 req/s, a modest rate for a service's busiest read
