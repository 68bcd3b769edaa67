"""An overload measured, not guessed: the rate a profile offers as a multiple of what the service
completes flat out, on the machine the run is on.

A profile that declares `OVERLOAD = k` (and `CAPACITY_PROBE`, the path to ask) is an overload by
definition. A rate fixed in the profile is one only on the machine it was chosen on: on
2026-12-01 a faster machine answered no_load_shedding's 130 views/s within the SLO. So before
its first repeat the lab starts the naive service and has `CLIENTS` closed-loop clients ask the
probe path for `SECONDS`, each sending its next request when the last one is answered. The
answers a second are the capacity, and both sides are offered `k` times it. The verdict still
measures capacity in the run itself (what the naive side completed): this only sets the load.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

CLIENTS = 30  # more than the service's pool, so the pool is never idle for want of a request
SECONDS = 4.0
WARM_UP_SECONDS = 1.0  # answers in the first second are not counted: caches and the pool fill


def closed_loop_rate(url: str, clients: int = CLIENTS, seconds: float = SECONDS) -> float:
    """Successful answers a second that `clients` closed-loop clients get from `url` (loopback)."""
    began = time.monotonic()
    counted_from, deadline = began + WARM_UP_SECONDS, began + WARM_UP_SECONDS + seconds
    answered = [0] * clients

    def client(index: int) -> None:
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=seconds + 5) as response:  # noqa: S310 (loopback)
                    response.read()
                    ok = response.status == 200
            except (urllib.error.URLError, OSError):
                ok = False
            if ok and counted_from <= time.monotonic() < deadline:
                answered[index] += 1

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + WARM_UP_SECONDS + 10)
    return sum(answered) / seconds
