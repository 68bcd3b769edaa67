"""correlated_subquery: readers open the token history (running totals) of conversations.

Cold conversations cost little either way; the hot ones make the per-row subquery read the
conversation once per message shown.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (one hot conversation in five, as
# the readers open them); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/conversations/1/tokens", "/conversations/101/tokens", "/conversations/202/tokens",
    "/conversations/303/tokens", "/conversations/404/tokens", "/conversations/3/tokens",
    "/conversations/606/tokens", "/conversations/707/tokens", "/conversations/808/tokens",
    "/conversations/909/tokens", "/conversations/5/tokens", "/conversations/1111/tokens",
    "/conversations/1212/tokens", "/conversations/1313/tokens", "/conversations/1414/tokens"
)
FALLBACK_RPS = 10


class Reader(Paced, FastHttpUser):
    rate = 1

    @task
    def token_history(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/tokens", name="/conversations/[id]/tokens")


class Shape(WarmRampHold):
    users = sample.users_for(Reader.rate, FALLBACK_RPS)
