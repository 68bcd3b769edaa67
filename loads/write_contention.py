"""write_contention: a live event's thread, where a crowd posts into one conversation at once.

A crowd in one live thread posts into a single conversation, as many posts a second as half of
what the fixed service can take on the machine at hand (80 where nothing was measured: a few
hundred people each posting every few seconds); meanwhile people open their list of recently
active conversations. The naive post holds its conversation's row lock from its first statement to
COMMIT (tokenizer call included), so posts to the thread go one at a time and queue behind each
other; without the touch, they run side by side.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # a chat post should show up within a quarter of a second
POSTERS = 40
LIVE_THREAD = 1  # one of the seeded hot conversations
# The posts a second are measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (posts into the thread by a few
# people); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (("POST", "/conversations/1/messages", {"user_id": 7, "body": "what a goal that was"}),
                  ("POST", "/conversations/1/messages", {"user_id": 70, "body": "what a goal that was"}),
                  ("POST", "/conversations/1/messages", {"user_id": 700, "body": "what a goal that was"}))
FALLBACK_RPS = 80
THREAD_POSTS_PER_S = sample.sample().get("offered_rps", FALLBACK_RPS)


class Poster(Paced, FastHttpUser):
    weight = 4
    rate = THREAD_POSTS_PER_S / POSTERS

    @task
    def post(self) -> None:
        self.client.post(f"/conversations/{LIVE_THREAD}/messages", name="/conversations/[id]/messages",
                         json={"user_id": sample.user(), "body": "what a goal that was"})


class ActiveReader(Paced, FastHttpUser):
    weight = 1
    rate = 0.5  # someone opens their list every other second

    @task
    def recently_active(self) -> None:
        self.client.get(f"/users/{sample.user()}/active", name="/users/[id]/active")


class Shape(WarmRampHold):
    users = POSTERS + POSTERS // 4
