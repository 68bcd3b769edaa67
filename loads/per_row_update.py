"""per_row_update: users come online and clear their notification badge ("mark all as read").

Users come in proportion to their activity (the seed's law: user k holds about 1 / (k ln users)
of the notifications, and is that much more likely to show up), each one once in the run: after
"mark all as read" their badge is clear, and a second click would mark nothing. So the busy users
with hundreds or thousands unread are among the first to arrive, mixed with the long tail.
"""


from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
# A click on "mark all as read" should feel instant; the lab's default quarter of a second at p99.
SLO_P99_MS = 250
class Reader(Paced, FastHttpUser):
    rate = 2  # clicks a second per simulated client

    @task
    def mark_all_read(self) -> None:
        self.client.post(f"/users/{sample.arriving_user()}/notifications/read", name="/users/[id]/notifications/read")


class Shape(WarmRampHold):
    users = 10
