"""write_contention: a live event's thread, where a crowd posts into one conversation at once.

A few hundred people in one live thread, each posting every few seconds, make about 80 posts a
second into a single conversation; meanwhile people open their list of recently active
conversations. The naive post holds its conversation's row lock from its first statement to
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
THREAD_POSTS_PER_S = 80


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
