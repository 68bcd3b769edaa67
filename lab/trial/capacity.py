"""A load measured, not guessed: the rate a profile offers, set from what a service completes
flat out on the machine the run is on.

A rate fixed in a profile means one thing only on the machine it was chosen on: on 2026-12-01 a
machine three times faster than the one the profiles were written on answered most of them far
within the SLO, naive code included, so the harm they were to show never happened. A profile that
declares CAPACITY_PROBE (the paths to ask) has the lab measure instead. Before the first repeat,
`CLIENTS` closed-loop clients ask those paths for `SECONDS`, each sending its next request when the
last one is answered; the answers a second are the capacity. Then:

- with `OVERLOAD = k` (an overload by definition, no_load_shedding): the naive service is measured
  and both sides are offered k times its capacity;
- otherwise: the entry's reference fix is measured, and both sides are offered FIXED_SHARE of its
  capacity, the fixed service half busy, a load its operator would call comfortable. The naive
  side then breaks the SLO only if its code costs more than 1 / FIXED_SHARE times the fix's, on any
  machine; the load does not presume that it does.

The verdict still judges what each side did in the run itself: this only sets the load.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from typing import Any

CLIENTS = 30  # more than the service's pool, so the pool is never idle for want of a request
SECONDS = 2.5  # at hundreds of answers a second, enough to count; each entry's run pays it
WARM_UP_SECONDS = 0.5  # answers in the first half second are not counted: caches and the pool fill
FIXED_SHARE = 0.5  # of the reference fix's capacity, offered where a profile declares no OVERLOAD


Request = tuple[str, str, Any]  # (method, path, JSON body or None), as a path module's PROBES


def probe_requests(declared: Any) -> list[Request]:
    """CAPACITY_PROBE as requests: a path (a GET), or several asked in turn at random, since one
    conversation is rarely typical of a skewed chat; a (method, path, body) tuple for a write."""
    items = [declared] if isinstance(declared, str) or _is_request(declared) else list(declared)
    return [item if _is_request(item) else ("GET", str(item), None) for item in items]


def _is_request(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 3 and item[0] in ("GET", "POST")


def closed_loop_rate(base_url: str, requests: list[Request], clients: int = CLIENTS,
                     seconds: float = SECONDS) -> float:
    """Successful answers a second that `clients` closed-loop clients get to `requests` (loopback)."""
    began = time.monotonic()
    counted_from, deadline = began + WARM_UP_SECONDS, began + WARM_UP_SECONDS + seconds
    answered = [0] * clients

    def client(index: int) -> None:
        choose = random.Random(index).choice  # noqa: S311 (which request to send, not a secret)
        while time.monotonic() < deadline:
            method, path, body = choose(requests)
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(base_url + path, data=data, method=method,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=seconds + 5) as response:  # noqa: S310 (loopback)
                    response.read()
                    ok = 200 <= response.status < 300
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
