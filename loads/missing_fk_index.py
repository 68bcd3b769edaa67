"""missing_fk_index: a spam wave; bots post, moderators purge each bot's messages of the last hour.

Ten bot accounts post as fast as the service's rate limit lets an account post (5 messages a
second) into random conversations; two moderators each purge a flagged bot every second, so each
purge deletes the couple of dozen messages the bot posted since its last one. Every deleted message costs a
scan of notifications while notifications.message_id has no index, and finding the bot's messages
costs a scan of messages while messages.user_id has none. The purge holds the bot's account row
(the tokens it gives back) until it commits, so the bot's own posts wait for it too.
"""

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from pglab.loads import recorder, sample
from pglab.loads.pacing import Paced
from pglab.loads.shapes import WarmRampHold

recorder.install()
SLO_P99_MS = 250  # a moderator's click, and the posts around it, answer within a quarter second
BOTS = 10  # accounts 1..BOTS post the spam
BOT_POSTS_PER_S = 5  # a bot posts at the per-account rate limit
MODERATORS = 2
PURGES_PER_S = 2  # a spam wave keeps the moderators busy; and 10+ purges in a short hold give a p99


class Bot(Paced, FastHttpUser):
    weight = 10
    rate = BOT_POSTS_PER_S * BOTS / 20  # 20 of the users are bots (by weight)

    @task
    def post(self) -> None:
        self.client.post(f"/conversations/{sample.conversation()}/messages", name="/conversations/[id]/messages",
                         json={"user_id": random.randint(1, BOTS), "body": "cheap followers at bit.ly/xyz"})


class Moderator(Paced, FastHttpUser):
    weight = 1
    rate = PURGES_PER_S / MODERATORS

    @task
    def purge(self) -> None:
        self.client.post(f"/users/{random.randint(1, BOTS)}/purge", name="/users/[id]/purge")


class Shape(WarmRampHold):
    users = 22
