"""no_load_shedding: a crowd opens the busiest conversations' top-posters panel at once.

A deliberate overload: each view is a report over a hot conversation's ~12k messages (it splits
every body into words: the naive side, working flat out with 10 connections, completed 16-21
views/s on the shared 2-core lab machine), and 60 views/s are offered, about three times that. The lab does not trust
that guess: the verdict measures the service's capacity in the same run (what the naive side,
working flat out, completed) and judges the fix on goodput, the answers that arrived within
the SLO. SHEDS_LOAD declares that the fix answers the excess with 503 and Retry-After: those
count as shed, not as errors, and the fix must turn more of the offered load into timely
answers than the naive service did.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # an interactive panel: the same SLO as the other reads
SHEDS_LOAD = True


class Viewer(Paced, FastHttpUser):
    rate = 2  # a view every half second per user: 30 users offer 60 views/s

    @task
    def top_posters(self) -> None:
        conversation = random.randint(1, sample.sample()["hot_conversations"])
        self.client.get(f"/conversations/{conversation}/top-posters", name="/conversations/[id]/top-posters")


class Shape(WarmRampHold):
    users = 30
