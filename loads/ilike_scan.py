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
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (searches for ten of the rare words
# the readers search for); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/search?q=kadelsha", "/search?q=vodelsha", "/search?q=paxdelsha", "/search?q=haldelsha", "/search?q=pridelsha",
    "/search?q=kanusha", "/search?q=vonusha", "/search?q=paxnusha", "/search?q=halnusha", "/search?q=prinusha"
)
FALLBACK_RPS = 40


class Searcher(Paced, FastHttpUser):
    rate = 2

    @task
    def search(self) -> None:
        self.client.get(f"/search?q={sample.search_term()}", name="/search")


class Shape(WarmRampHold):
    users = sample.users_for(Searcher.rate, FALLBACK_RPS)
