"""offset_pagination: readers scroll back through the history of the busiest conversations.

Each reader opens a hot conversation (newest page), jumps to a date up to a month back ("jump to
date", as chat apps offer it) and scrolls back from there, following the `Link: rel="next"`
cursor the service gives: one page per task, the cursor kept between tasks. The seeded history is
a month long, so jumps land at every depth of a 24,000-message conversation, and the scrolling
continues deeper from there.
"""

import random
import re
from datetime import UTC, datetime, timedelta

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
# Loading older history as the reader scrolls is interactive: 250 ms is the lab's usual budget for a
# page a person waits for.
SLO_P99_MS = 250
# The rate offered is measured on the machine at hand (`lab/trial/capacity.py`): half of what the
# reference fix completes flat out when asked for CAPACITY_PROBE (the hot conversations' newest
# pages and pages a week to a month back); FALLBACK_RPS where nothing was measured (the campaign).
CAPACITY_PROBE = (
    "/conversations/1/scrollback", "/conversations/1/scrollback?before=2025-12-05T00:00:00.000000Z",
    "/conversations/1/scrollback?before=2025-12-12T00:00:00.000000Z",
    "/conversations/1/scrollback?before=2025-12-19T00:00:00.000000Z",
    "/conversations/1/scrollback?before=2025-12-26T00:00:00.000000Z", "/conversations/2/scrollback",
    "/conversations/2/scrollback?before=2025-12-05T00:00:00.000000Z",
    "/conversations/2/scrollback?before=2025-12-12T00:00:00.000000Z",
    "/conversations/2/scrollback?before=2025-12-19T00:00:00.000000Z",
    "/conversations/2/scrollback?before=2025-12-26T00:00:00.000000Z", "/conversations/3/scrollback",
    "/conversations/3/scrollback?before=2025-12-05T00:00:00.000000Z",
    "/conversations/3/scrollback?before=2025-12-12T00:00:00.000000Z",
    "/conversations/3/scrollback?before=2025-12-19T00:00:00.000000Z",
    "/conversations/3/scrollback?before=2025-12-26T00:00:00.000000Z", "/conversations/4/scrollback",
    "/conversations/4/scrollback?before=2025-12-05T00:00:00.000000Z",
    "/conversations/4/scrollback?before=2025-12-12T00:00:00.000000Z",
    "/conversations/4/scrollback?before=2025-12-19T00:00:00.000000Z",
    "/conversations/4/scrollback?before=2025-12-26T00:00:00.000000Z", "/conversations/5/scrollback",
    "/conversations/5/scrollback?before=2025-12-05T00:00:00.000000Z",
    "/conversations/5/scrollback?before=2025-12-12T00:00:00.000000Z",
    "/conversations/5/scrollback?before=2025-12-19T00:00:00.000000Z",
    "/conversations/5/scrollback?before=2025-12-26T00:00:00.000000Z"
)
FALLBACK_RPS = 80
PAGES_PER_SCROLL = 6  # pages read before the reader goes elsewhere: open, jump, then scroll back
JUMP_DAYS = 30  # how far back a reader jumps ("last month" in a jump-to-date menu)
NAME = "/conversations/[id]/scrollback"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class Scroller(Paced, FastHttpUser):
    rate = 2  # pages a second per reader: a quick scroll loads the next page before the reader reaches it

    def on_start(self) -> None:
        super().on_start()
        self.path: str | None = None  # the next request of this reader's scroll; None: open a new one
        self.conversation = 0
        self.pages = 0

    @task
    def scroll(self) -> None:
        if self.path is None or self.pages >= PAGES_PER_SCROLL:
            self.conversation = random.randint(1, sample.sample()["hot_conversations"])
            self.path, self.pages = f"/conversations/{self.conversation}/scrollback", 0
        response = self.client.get(self.path, name=NAME)
        self.pages += 1
        self.path = self._next(response)

    def _next(self, response: object) -> str | None:
        """After the newest page, a jump to a date; after any other, the page the Link header names."""
        if getattr(response, "status_code", 0) != 200:
            return None
        if self.pages == 1:
            body = response.json()  # type: ignore[attr-defined]
            if not body:
                return None
            newest = datetime.fromisoformat(body[0]["created_at"])
            jump = (newest - timedelta(seconds=random.uniform(0, JUMP_DAYS * 86_400))).astimezone(UTC)
            return f"/conversations/{self.conversation}/scrollback?before={jump.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
        found = _NEXT.search(response.headers.get("link") or "")  # type: ignore[attr-defined]
        return found.group(1) if found else None


class Shape(WarmRampHold):
    users = sample.users_for(Scroller.rate, FALLBACK_RPS)
