"""no_load_shedding: a crowd opens the busiest conversations' top-posters panel at once.

A deliberate overload: each view is a report over a hot conversation's last 1,000 messages (it
splits every body into words, about 12 ms of database time alone). How many views a second overload
the service depends on the machine: 130 did on the 2-core machine this profile was first run on
(10 connections completed 67-94/s) and did not on a machine three times faster. So the lab measures
it (OVERLOAD, `lab/trial/capacity.py`): before the first repeat, closed-loop clients ask the naive
service for CAPACITY_PROBE flat out, and both sides are offered OVERLOAD times what it completed
(130 views/s where nothing was measured: the campaign). The verdict also measures the capacity in
the run itself (what the naive side, working flat out, completed) and judges the fix on goodput,
the answers that arrived within the SLO. SHEDS_LOAD declares that the fix answers the excess with
503 and Retry-After: those count as shed, not as errors, and the fix must turn more of the offered
load into timely answers than the naive service did.
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
OVERLOAD = 1.5  # the rate offered: this many times what the naive service completes flat out
CAPACITY_PROBE = "/conversations/1/top-posters"  # what the lab asks flat out to measure that
FALLBACK_RPS = 130  # offered where the lab measured nothing (the campaign)


class Viewer(Paced, FastHttpUser):
    rate = 2  # a view every half second per user

    @task
    def top_posters(self) -> None:
        conversation = random.randint(1, sample.sample()["hot_conversations"])
        self.client.get(f"/conversations/{conversation}/top-posters", name="/conversations/[id]/top-posters")


class Shape(WarmRampHold):
    users = sample.users_for(Viewer.rate, FALLBACK_RPS)
