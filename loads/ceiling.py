"""The load generator's own ceiling: users hammering the service's trivial /health endpoint.

`tests/bench/lab_bench.py` runs it to show how many requests a second one Locust process can make
on this machine, next to the rates the anti-pattern profiles ask for.
"""

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder
from pglab.loads.shapes import WarmRampHold

recorder.install()


class Prober(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get("/health", name="/health")


class Shape(WarmRampHold):
    users = 20
