"""What the profiles need to know about the seeded data, handed over by the lab in PGLAB_LAB_SAMPLE
(JSON: sizes, the hot conversations, rare search words, the server's max_connections)."""

from __future__ import annotations

import json
import os
import random
from functools import cache
from typing import Any

SAMPLE_VARIABLE = "PGLAB_LAB_SAMPLE"
HOT_SHARE = 0.2  # share of reads that go to a hot conversation


@cache
def sample() -> dict[str, Any]:
    return dict(json.loads(os.environ[SAMPLE_VARIABLE]))


def conversation() -> int:
    """A conversation to read: usually a cold one, sometimes one of the few hot ones."""
    data = sample()
    if random.random() < HOT_SHARE:
        return random.randint(1, data["hot_conversations"])
    return random.randint(data["hot_conversations"] + 1, data["conversations"])


def user() -> int:
    return random.randint(1, sample()["users"])


def search_term() -> str:
    return random.choice(sample()["search_terms"])


_arrived: set[int] = set()


def arriving_user() -> int:
    """The next user to come online: drawn by activity, floor((users + 1) ^ u) for u uniform (the
    seed's law for notifications per user), among those who have not come yet (any one once the
    busy ones have all come)."""
    users = sample()["users"]
    for _ in range(100):
        user = min(users, int((users + 1) ** random.random()))
        if user not in _arrived:
            break
    else:
        user = random.randint(1, users)
    _arrived.add(user)
    return user


def users_for(rate: float, fallback_rps: float) -> int:
    """How many users, each sending `rate` requests a second, offer the rate the lab measured for
    this machine (`lab/trial/capacity.py`), or `fallback_rps` where it measured none (the campaign)."""
    return max(1, round(sample().get("offered_rps", fallback_rps) / rate))
