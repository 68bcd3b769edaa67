"""bulk_delete: the nightly retention job runs while users clear their notification badges.

The job (one scheduler, one run) keeps RETENTION_DAYS of notifications: it comes once, at the
start of the hold, on the day it is switched on, and purges most of the table (the path seeds a
year of history that was never purged). Meanwhile users come online in proportion
to their activity, each once, and "mark all as read": their unread notifications include a few
old ones that the job is deleting, so they wait for the job's row locks.
"""

import time

import gevent
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample, shapes
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
# A click on "mark all as read" should feel instant; the lab's default quarter of a second at p99.
SLO_P99_MS = 250
RETENTION_DAYS = 30  # a common retention for notifications
class Scheduler(Paced, FastHttpUser):
    fixed_count = 1  # one retention job, however many users
    rate = 1 / 3600  # once an hour: once in a lab run

    def on_start(self) -> None:
        """The job's slot is the start of the hold (plus a second), so its effect is judged.
        Not Paced's first slot: that falls at a random point of the first period, an hour long
        here, so the job would almost never run within a lab run."""
        self._slot = time.time() + shapes.duration() * (shapes.WARMUP_SHARE + shapes.RAMP_SHARE) + 1.0

    @task
    def retention(self) -> None:
        gevent.sleep(max(0.0, self._slot - time.time()))  # a task runs at once when the user starts
        self.client.post("/retention", json={"keep_days": RETENTION_DAYS}, name="/retention")


class Reader(Paced, FastHttpUser):
    rate = 4  # clicks a second per simulated client

    @task
    def mark_all_read(self) -> None:
        self.client.post(f"/users/{sample.arriving_user()}/notifications/read", name="/users/[id]/notifications/read")


class Shape(WarmRampHold):
    users = 11
