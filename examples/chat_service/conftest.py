"""Fixtures for the chat service's example suite: a small chat database seeded once into the
template, and a client that drives the service's ASGI app in-process, so every statement the
service sends goes through the psycopg the plugin watches and carries the service's own line.

The data is small on purpose (a test suite's data): the plan checks either find the anti-pattern
at this size or are asked to scale the planner statistics up (`plan_scale`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from pglab.lab.core.fixes import chat_schema
from pglab.lab.trial.service.app import create_app
from pglab.lab.trial.service.config import ServiceConfig

SEED = """
INSERT INTO users (name, email)
    SELECT 'user ' || g, 'user' || g || '@example.com' FROM generate_series(1, 200) g;
INSERT INTO conversations (owner_id, title)
    SELECT 1 + g % 200, 'conversation ' || g FROM generate_series(1, 50) g;
INSERT INTO conversation_members SELECT c, u FROM generate_series(1, 50) c, generate_series(1, 4) u;
INSERT INTO messages (conversation_id, user_id, body, tokens)
    SELECT 1 + g % 50, 1 + g % 200, 'message ' || g, 1 + g % 7 FROM generate_series(1, 5000) g;
"""


@pytest.fixture(scope="session")
def pglab_seed() -> Callable[[str], None]:
    def seed(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(chat_schema())
            conn.execute(SEED)
            conn.execute("ANALYZE")
    return seed


class ChatClient:
    """The service's ASGI app on an event loop of its own: lifespan start-up opens its pool, each
    `request` is one HTTP exchange, `close` shuts it down."""

    def __init__(self, config: ServiceConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = create_app(config)
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan = self.loop.create_task(self.app({"type": "lifespan"}, self._to_app.get, self._from_app.put))
        self._lifespan_step("startup")

    def _lifespan_step(self, phase: str) -> None:
        async def step() -> None:
            await self._to_app.put({"type": f"lifespan.{phase}"})
            answer = await self._from_app.get()
            assert answer["type"] == f"lifespan.{phase}.complete", answer

        self.loop.run_until_complete(step())

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        async def exchange() -> tuple[int, bytes]:
            sent: list[dict[str, Any]] = []
            payload = json.dumps(body).encode() if body is not None else b""
            requests = [{"type": "http.request", "body": payload, "more_body": False}]
            answered = asyncio.Event()

            async def receive() -> dict[str, Any]:
                """The request once; then, as a client would, nothing until the whole response
                has arrived (a streaming response listens for the disconnect meanwhile)."""
                if requests:
                    return requests.pop()
                await answered.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    answered.set()

            route, _, query = path.partition("?")
            headers = [(b"content-type", b"application/json")] if body is not None else []
            scope = {"type": "http", "method": method, "path": route, "query_string": query.encode(),
                     "headers": headers}
            await self.app(scope, receive, send)
            return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])

        return self.loop.run_until_complete(exchange())

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, payload = self.request(method, path, body)
        assert status < 300, (status, payload)
        return json.loads(payload)

    def close(self) -> None:
        self._lifespan_step("shutdown")
        self.loop.run_until_complete(self._lifespan)
        self.loop.close()


@pytest.fixture
def chat(pglab_db: str) -> Iterator[Callable[..., ChatClient]]:
    """`chat(naive={"n_plus_one"})`: the service on this test's database, with the named code paths
    naive and every other one fixed."""
    clients: list[ChatClient] = []

    def start(naive: set[str] = frozenset(), **settings: Any) -> ChatClient:  # type: ignore[assignment]
        config = ServiceConfig(dsn=pglab_db, naive=frozenset(naive), pool_size=2, **settings)
        clients.append(ChatClient(config))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
