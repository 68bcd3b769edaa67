"""no_load_shedding: a crowd opens the busiest conversations' top-posters panel at once.

A deliberate overload: each view is a report over a hot conversation's last 1,000 messages (it
splits every body into words, about 12 ms of database time alone), and 130 views/s are offered,
more than 10 connections complete (67-94/s) on the 2-core lab machine that Locust and the service
share. The lab does not trust that guess: the verdict measures the service's capacity in the same
run (what the naive side, working flat out, completed) and judges the fix on goodput, the answers
that arrived within the SLO. SHEDS_LOAD declares that the fix answers the excess with 503 and
Retry-After: those count as shed, not as errors, and the fix must turn more of the offered load
into timely answers than the naive service did.
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
    rate = 2  # a view every half second per user: 65 users offer 130 views/s

    @task
    def top_posters(self) -> None:
        conversation = random.randint(1, sample.sample()["hot_conversations"])
        self.client.get(f"/conversations/{conversation}/top-posters", name="/conversations/[id]/top-posters")


class Shape(WarmRampHold):
    users = 65
