"""streaming_txn: some users ask for streamed answers (seconds each) while others read.

A stream that holds its transaction holds a pooled connection for its whole length; a handful of
them starve the readers of connections. Streams are timed to their last chunk, and to their
first chunk apart: the first chunk is what the SLO judges, since the model, not the database,
sets how long the whole answer takes (STREAM_SECONDS).
"""

import requests
from locust import HttpUser, task

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced, timed_stream
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 750  # a stream's first chunk comes after the model's first step (0.2 s)
STREAM_SECONDS = 2.0  # the service's simulated model: 10 chunks, 0.2 s apart


class Streamer(Paced, HttpUser):
    weight = 1
    rate = 1 / (STREAM_SECONDS + 0.5)  # a new stream half a second after the last one, when on time

    def on_start(self) -> None:
        super().on_start()
        self.session = requests.Session()

    @task
    def stream(self) -> None:
        timed_stream(self, self.session, f"/conversations/{sample.conversation()}/stream",
                     "/conversations/[id]/stream", json={"user_id": sample.user(), "prompt": "tell me about postgres"})


class Reader(Paced, HttpUser):
    weight = 1
    rate = 5

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = 40
