"""serializable_no_retry: API clients post prompts metered against their accounts' token quotas.

A few accounts are busy: agents and batch jobs that send prompts in parallel (BUSY_ACCOUNTS share
the whole rate: half of what the fixed service posts flat out on the machine at hand, 50 prompts a
second where nothing was measured). Two prompts of one account that overlap in the
database make a SERIALIZABLE transaction fail with 40001; with no retry, that is an error the
client sees. The error budget is the usual 99 % availability objective of an API.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
ERROR_BUDGET = 0.01
BUSY_ACCOUNTS = 3  # accounts 1..3; account 9's quota is used up and the load leaves it alone
# The prompts a second are measured on the machine at hand (`lab/trial/capacity.py`): half of what
# the reference fix posts flat out for the busy accounts; FALLBACK_RPS where nothing was measured.
CAPACITY_PROBE = (("POST", "/conversations/4/prompts", {"user_id": 1, "body": "summarise this thread for me"}),
                  ("POST", "/conversations/40/prompts", {"user_id": 2, "body": "summarise this thread for me"}),
                  ("POST", "/conversations/400/prompts", {"user_id": 3, "body": "summarise this thread for me"}))
FALLBACK_RPS = 50


class ApiClient(Paced, FastHttpUser):
    rate = 5

    @task
    def prompt(self) -> None:
        self.client.post(f"/conversations/{sample.conversation()}/prompts", name="/conversations/[id]/prompts",
                         json={"user_id": random.randint(1, BUSY_ACCOUNTS), "body": "summarise this thread for me"})


class Shape(WarmRampHold):
    users = sample.users_for(ApiClient.rate, FALLBACK_RPS)
