"""fanout_loop: announcements are broadcast to every user while others read their conversations.

Half of the requests are broadcasts, half reads, at half of what the fixed service completes flat
out with that mix on the machine at hand (`lab/trial/capacity.py`): easy for one INSERT ... SELECT
per broadcast, far beyond a loop of single-row INSERTs, which keeps a pooled connection and the
service busy with a thousand round trips per broadcast while the readers wait their turn. Where
nothing was measured (the campaign), the broadcasts ask for the same notifications a second at
every scale (BROADCAST_ROWS_PER_S) beside FALLBACK_READS_PER_S.
"""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
BROADCASTERS = READERS = 10  # equal weights: Locust splits the users evenly between the two
# One broadcast for every read, as the load sends them; a hot conversation among the cold ones.
CAPACITY_PROBE = (("POST", "/broadcast", {"kind": "announcement"}), ("POST", "/broadcast", {"kind": "announcement"}),
                  ("POST", "/broadcast", {"kind": "announcement"}), "/conversations/3/messages",
                  "/conversations/202/messages", "/conversations/1313/messages")
BROADCAST_ROWS_PER_S = 10_000
FALLBACK_READS_PER_S = 80
MEASURED_RPS = sample.sample().get("offered_rps")


class Broadcaster(Paced, FastHttpUser):
    rate = (MEASURED_RPS / 2 if MEASURED_RPS else BROADCAST_ROWS_PER_S / sample.sample()["users"]) / BROADCASTERS

    @task
    def broadcast(self) -> None:
        self.client.post("/broadcast", json={"kind": "announcement"}, name="/broadcast")


class Reader(Paced, FastHttpUser):
    rate = (MEASURED_RPS / 2 if MEASURED_RPS else FALLBACK_READS_PER_S) / READERS

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = BROADCASTERS + READERS
