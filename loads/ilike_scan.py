"""ilike_scan: users search messages for a word.

`ILIKE '%word%'` cannot use a b-tree, so each search reads every message body.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250


class Searcher(Paced, FastHttpUser):
    rate = 2

    @task
    def search(self) -> None:
        self.client.get(f"/search?q={sample.search_term()}", name="/search")


class Shape(WarmRampHold):
    users = 20
