"""sort_without_index: help-desk connectors sync their inbox (newest conversations) through the API.

Five integration accounts own tens of thousands of conversations each; every inbox page sorts all
of an account's conversations to return twenty, unless an index delivers them in order. (People's
inboxes hold a few conversations and cost little either way: the probes compare them.)
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # a page of the web app or an API call: a quarter of a second at the 99th percentile
INTEGRATIONS = range(1, 6)  # users 1 to 5: the accounts the setup block of fixes/sort_without_index.sql creates
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (the five accounts' inboxes); FALLBACK_RPS where
# nothing was measured (the campaign).
CAPACITY_PROBE = ("/users/1/inbox", "/users/2/inbox", "/users/3/inbox", "/users/4/inbox", "/users/5/inbox")
FALLBACK_RPS = 100


class Connector(Paced, FastHttpUser):
    """A connector's sync worker: polls an integration account's inbox every quarter of a second."""

    rate = 4

    @task
    def inbox(self) -> None:
        self.client.get(f"/users/{random.choice(INTEGRATIONS)}/inbox", name="/users/[id]/inbox")


class Shape(WarmRampHold):
    users = sample.users_for(Connector.rate, FALLBACK_RPS)
