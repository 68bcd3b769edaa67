"""streaming_txn: some users ask for streamed answers (seconds each) while others read.

A stream that holds its transaction holds a pooled connection for its whole length; a handful of
them starve the readers of connections.
"""

from locust import HttpUser, constant, constant_throughput, task

from pglab.loads import recorder, sample
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 750  # a stream's first chunk comes after the model's first step (0.2 s)


class Streamer(HttpUser):
    weight = 1
    wait_time = constant(0.5)

    @task
    def stream(self) -> None:
        with self.client.post(f"/conversations/{sample.conversation()}/stream", name="/conversations/[id]/stream",
                              json={"user_id": sample.user(), "prompt": "tell me about postgres"},
                              stream=True, catch_response=True) as response:
            try:
                for _ in response.iter_content(chunk_size=None):
                    pass
            except Exception as error:  # a stream cut short is a failed request
                response.failure(f"stream interrupted: {error}")


class Reader(HttpUser):
    weight = 1
    wait_time = constant_throughput(5)

    @task
    def read_messages(self) -> None:
        self.client.get(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages")


class Shape(WarmRampHold):
    users = 40
