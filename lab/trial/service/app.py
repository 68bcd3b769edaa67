"""The chat service as a bare ASGI application.

A framework would add little here: a dozen routes, JSON in and out, one streamed response. The
handlers stay short so that the code paths that matter, the naive and fixed implementations in
`paths/`, are easy to find.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import psycopg

from pglab.lab.trial.service import model, paths
from pglab.lab.trial.service.config import ServiceConfig
from pglab.lab.trial.service.db import Database, Unavailable

SEARCH_LIMIT = 20
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]  # from the route
    query: dict[str, str]
    body: dict[str, Any]

    def integer(self, name: str) -> int:
        value = self.params.get(name) or self.body.get(name) or self.query.get(name)
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise BadRequest(f"{name} must be an integer") from None

    def text(self, name: str) -> str:
        value = self.body.get(name) or self.query.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"{name} is required")
        return value


class BadRequest(Exception):
    pass


@dataclass
class Response:
    body: Any
    status: int = 200


@dataclass
class Stream:
    chunks: AsyncIterator[str]


@dataclass
class Service:
    config: ServiceConfig
    db: Database = field(init=False)
    requests: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.db = Database(self.config)

    def generate(self, prompt: str) -> AsyncIterator[str]:
        return model.generate(prompt, self.config.stream_chunks, self.config.stream_interval)

    async def count_tokens(self, text: str) -> int:
        return await model.count_tokens(text, self.config.tokenizer_delay)

    async def record_message(self, conn: psycopg.AsyncConnection[Any], conversation_id: int, user_id: int,
                             body: str) -> dict[str, Any]:
        """Store a message and charge its tokens to the author (the counter_race code path)."""
        charge = paths.choose("counter_race", self.config)
        tokens = await charge(conn, user_id, body, self.count_tokens)
        cursor = await conn.execute(
            "INSERT INTO messages (conversation_id, user_id, body, tokens) VALUES (%s, %s, %s, %s) RETURNING id",
            (conversation_id, user_id, body, tokens))
        row = await cursor.fetchone()
        return {"id": row[0] if row else None, "tokens": tokens}

    # --- endpoints -------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return Response({"ok": True})

    async def lab_stats(self, request: Request) -> Response:
        return Response({"requests": self.requests, "errors": self.errors, **self.db.stats()})

    async def list_conversations(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, title, updated_at FROM conversations WHERE owner_id = %s ORDER BY updated_at DESC"
                " LIMIT 20", (request.integer("user_id"),))
            rows = await cursor.fetchall()
        return Response([{"id": i, "title": title, "updated_at": at} for i, title, at in rows])

    async def list_messages(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, user_id, body, tokens, created_at FROM messages WHERE conversation_id = %s"
                " ORDER BY created_at DESC LIMIT 50", (request.integer("conversation_id"),))
            rows = await cursor.fetchall()
        return Response([{"id": i, "user_id": u, "body": b, "tokens": t, "created_at": at} for i, u, b, t, at in rows])

    async def read_conversation(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            messages = await paths.choose("n_plus_one", self.config)(conn, request.integer("conversation_id"))
        return Response({"conversation_id": request.integer("conversation_id"), "messages": messages})

    async def token_history(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            rows = await paths.choose("correlated_subquery", self.config)(conn, request.integer("conversation_id"))
        return Response(rows)

    async def post_message(self, request: Request) -> Response:
        async with self.db.connection() as conn, conn.transaction():
            stored = await self.record_message(conn, request.integer("conversation_id"), request.integer("user_id"),
                                               request.text("body"))
        return Response(stored, status=201)

    async def stream_reply(self, request: Request) -> Stream:
        answer = paths.choose("streaming_txn", self.config)
        return Stream(answer(self, request.integer("conversation_id"), request.integer("user_id"),
                             request.text("prompt")))

    async def search(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, conversation_id, body FROM messages WHERE body ILIKE %s ORDER BY created_at DESC LIMIT %s",
                (f"%{request.text('q')}%", SEARCH_LIMIT))
            rows = await cursor.fetchall()
        return Response([{"id": i, "conversation_id": c, "body": b} for i, c, b in rows])

    async def broadcast(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            count = await paths.choose("fanout_loop", self.config)(conn, request.text("kind"))
        return Response({"recipients": count}, status=201)

    async def notifications(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, kind, message_id, read_at, created_at FROM notifications WHERE user_id = %s"
                " ORDER BY id DESC LIMIT 20", (request.integer("user_id"),))
            rows = await cursor.fetchall()
        return Response([{"id": i, "kind": k, "message_id": m, "read_at": r, "created_at": at}
                         for i, k, m, r, at in rows])

    async def mark_read(self, request: Request) -> Response:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "UPDATE notifications SET read_at = now() WHERE user_id = %s AND read_at IS NULL",
                (request.integer("user_id"),))
        return Response({"marked": cursor.rowcount})


Handler = Callable[[Service, Request], Awaitable[Response | Stream]]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(f"^{pattern}$"), handler)
    for method, pattern, handler in (
        ("GET", "/health", Service.health),
        ("GET", "/_lab/stats", Service.lab_stats),
        ("GET", r"/users/(?P<user_id>\d+)/conversations", Service.list_conversations),
        ("GET", r"/users/(?P<user_id>\d+)/notifications", Service.notifications),
        ("POST", r"/users/(?P<user_id>\d+)/notifications/read", Service.mark_read),
        ("GET", r"/conversations/(?P<conversation_id>\d+)", Service.read_conversation),
        ("GET", r"/conversations/(?P<conversation_id>\d+)/messages", Service.list_messages),
        ("POST", r"/conversations/(?P<conversation_id>\d+)/messages", Service.post_message),
        ("GET", r"/conversations/(?P<conversation_id>\d+)/tokens", Service.token_history),
        ("POST", r"/conversations/(?P<conversation_id>\d+)/stream", Service.stream_reply),
        ("GET", "/search", Service.search),
        ("POST", "/broadcast", Service.broadcast),
    )
]


def create_app(config: ServiceConfig) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    service = Service(config)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(service, receive, send)
        elif scope["type"] == "http":
            await _handle(service, scope, receive, send)

    return app


async def _lifespan(service: Service, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await service.db.open()
            except Exception as error:  # the lab reads this line when the service fails to start
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await service.db.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _handle(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
    service.requests += 1
    try:
        request = await _request(scope, receive)
        result: Response | Stream = await _route(service, request)
        if isinstance(result, Stream):
            await _send_stream(result, send)
            return
    except BadRequest as error:
        result = Response({"error": str(error)}, status=400)
    except Unavailable as error:
        result = Response({"error": str(error)}, status=503)
    except psycopg.Error as error:
        result = Response({"error": f"{type(error).__name__}: {error}"}, status=500)
    if result.status >= 500:
        service.errors += 1
    await _send_json(result, send)


async def _route(service: Service, request: Request) -> Response | Stream:
    for method, pattern, handler in ROUTES:
        match = pattern.match(request.path)
        if match and method == request.method:
            request.params = match.groupdict()
            return await handler(service, request)
    return Response({"error": f"no route for {request.method} {request.path}"}, status=404)


async def _request(scope: Scope, receive: Receive) -> Request:
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    query = {key: values[0] for key, values in parse_qs(scope.get("query_string", b"").decode()).items()}
    return Request(scope["method"], scope["path"], {}, query, body if isinstance(body, dict) else {})


async def _send_json(response: Response, send: Send) -> None:
    payload = json.dumps(response.body, default=str).encode()
    await send({"type": "http.response.start", "status": response.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


async def _send_stream(stream: Stream, send: Send) -> None:
    """Headers go out with the first chunk, so a failure to get a connection is still a clean 503."""
    first = await anext(stream.chunks)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": first.encode(), "more_body": True})
    async for chunk in stream.chunks:
        await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
