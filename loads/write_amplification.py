"""write_amplification: integrations post into conversations through the incoming webhook.

Each post is a CI run's result: a one-line summary and the event's JSON payload, stored as the
message's metadata. Every post writes one row into messages, and one entry into every index of
the table; the lab judges the WAL that costs, per post, against what a message needs.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250
# What one posted message needs to write to WAL (PostgreSQL's WAL record sizes, read with
# pg_walinspect on the lab's server, which writes no full-page images):
# - the heap insert: ~520 bytes (~50 of record and tuple headers, ~60 of columns, the ~40-character
#   body and the ~350-character JSON payload as jsonb);
# - a B-tree leaf insert (~66 bytes) into each index the service's reads and foreign keys use:
#   the primary key, (conversation_id, created_at), and the other lab fixes' (user_id) and
#   (created_at): ~270;
# - the trigram search index (ilike_scan's fix): a pending-list record with one entry per distinct
#   trigram of the body, ~700, and ~70 more for its pending-list pages;
# - a row lock on the parent row of each of its two foreign keys (users, conversations): ~110.
# That is ~1,670 bytes. The budget is 2 KiB, a quarter more, for bodies and payloads longer than
# this profile's and for B-tree page splits. Past it, the table writes entries no query reads:
# WAL that every replica and the archive receive, for nothing.
WAL_BUDGET_PER_WRITE = 2048
USERS = 30
# Integrations post in bursts (a merge train's CI runs, an alert storm): 150 posts a second across
# the workspace's bots (USERS users at RATE each) is one such burst.
RATE = 5
REPOSITORIES = ("chat/service", "chat/web", "chat/mobile", "infra/terraform", "infra/charts")
WORKFLOWS = ("tests", "lint", "build", "deploy")


def event(run_id: int) -> dict[str, object]:
    """A CI run's webhook payload, shaped like GitHub's workflow_run event (its top-level fields)."""
    repository, workflow = random.choice(REPOSITORIES), random.choice(WORKFLOWS)
    conclusion = random.choice(("success", "success", "success", "failure"))
    return {"source": "ci", "event": "workflow_run", "repository": repository, "branch": "main",
            "commit": f"{random.getrandbits(160):040x}", "status": "completed", "conclusion": conclusion,
            "run_id": run_id, "run_attempt": 1, "actor": "deploy-bot", "workflow": workflow,
            "duration_s": random.randint(30, 900), "url": f"https://ci.example.com/{repository}/runs/{run_id}"}


class Integration(Paced, FastHttpUser):
    rate = RATE

    @task
    def post(self) -> None:
        run_id = random.randint(10_000, 99_999)
        payload = event(run_id)
        body = f"{payload['workflow']} {payload['conclusion']} on {payload['repository']} (run {run_id})"
        self.client.post(f"/conversations/{sample.conversation()}/webhook", name="/conversations/[id]/webhook",
                         json={"user_id": sample.user(), "body": body, "metadata": payload})


class Shape(WarmRampHold):
    users = USERS
