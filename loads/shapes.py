"""Load shapes shared by the profiles: warm-up, ramp, hold.

The warm-up runs a tenth of the users so caches and pools fill; the ramp brings the rest in
linearly; the hold keeps them all, and the lab judges its invariants on the hold alone. The total
length comes from PGLAB_LOAD_DURATION (seconds) so the lab bounds every run.
"""

from __future__ import annotations

import math
import os
from typing import ClassVar

from locust import LoadTestShape

DURATION_VARIABLE = "PGLAB_LOAD_DURATION"
WARMUP_SHARE = 0.15
RAMP_SHARE = 0.15
TICK_SECONDS = 1.0  # Locust asks the shape for its user count once a second


def duration() -> float:
    return float(os.environ.get(DURATION_VARIABLE, "30"))


class WarmRampHold(LoadTestShape):
    abstract: ClassVar[bool] = True
    users: ClassVar[int] = 20  # users during the hold; profiles override it
    spawn_rate: ClassVar[float] = 50.0  # users a second at least; never fewer than the hold's users

    def phases(self) -> list[dict[str, float | str]]:
        total = duration()
        warmup, ramp = total * WARMUP_SHARE, total * RAMP_SHARE
        return [{"name": "warmup", "start": 0.0, "end": warmup},
                {"name": "ramp", "start": warmup, "end": warmup + ramp},
                {"name": "hold", "start": warmup + ramp, "end": total}]

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()
        rate = max(self.spawn_rate, float(self.users))  # the ramp's last tick can bring in all of them
        warmup, ramp, hold = self.phases()
        if now >= float(hold["end"]):
            return None
        low = max(1, self.users // 10)
        if now < float(warmup["end"]):
            return low, rate
        if now < float(ramp["end"]):
            # The ramp's last tick brings every user in: a tick later would leave up to a second of
            # the hold short of users, and its offered rate short by as much.
            reaches_all = max(float(ramp["end"]) - TICK_SECONDS, float(ramp["start"]) + 1e-3)
            progress = min(1.0, (now - float(ramp["start"])) / (reaches_all - float(ramp["start"])))
            return low + math.ceil((self.users - low) * progress), rate
        return self.users, rate
