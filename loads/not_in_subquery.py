"""not_in_subquery: support agents keep the "needs attention" inbox open; it refreshes every second.

With a NULL among the notifications' message ids, the naive NOT IN lets no message through: the
inbox is empty, and its page never fills, so each refresh reads the whole messages table.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # an inbox page, like the service's other reads
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (the inbox itself); FALLBACK_RPS
# where nothing was measured (the campaign): five agents.
CAPACITY_PROBE = "/inbox/unanswered"
FALLBACK_RPS = 5


class Agent(Paced, FastHttpUser):
    rate = 1  # one refresh a second, as an open inbox polls

    @task
    def unanswered(self) -> None:
        self.client.get("/inbox/unanswered", name="/inbox/unanswered")


class Shape(WarmRampHold):
    users = sample.users_for(Agent.rate, FALLBACK_RPS)  # agents, each with the inbox open
