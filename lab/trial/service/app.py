"""The chat service on FastAPI, with a psycopg 3 async pool, run by uvicorn.

The routes every run shares live here; each anti-pattern's own route(s) and code come from its
module in `paths/` (naive or fixed, as the run's configuration says), so this file names no
anti-pattern. Two kinds of code are shared across routes and asked for by role: how a request
gets its connection (`connection`) and how a post charges its author (`charge`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from pglab.lab.trial.service import model, paths
from pglab.lab.trial.service.config import ServiceConfig
from pglab.lab.trial.service.db import Database, Unavailable


class Service:
    """What the paths get: the configuration, the database, the slow non-database work."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.db = Database(config)
        self.requests = 0
        self.errors = 0
        self.in_flight = 0  # requests not yet done, their background work included
        self._overrides = {entry_id: paths.load_file(entry_id, path) for entry_id, path in config.overrides}
        self._roles = paths.by_role()
        self.shipped: set[str] = set()  # ids whose fix an operator shipped while the service ran

    def impl(self, entry_id: str) -> Any:
        """The implementation this run uses for `entry_id`: naive if the run asks for it and no
        operator has shipped its fix since, else fixed."""
        source = self._overrides.get(entry_id) or paths.module(entry_id)
        naive = self.config.is_naive(entry_id) and entry_id not in self.shipped
        return source.naive if naive else source.fixed

    async def ship_fix(self, entry_id: str, file: str | None) -> None:
        """A campaign's operator ships a fix to the running service (no restart: the data and
        counters stay): the path runs fixed from now on, with `file`'s code when one is given. The
        `session` path's settings are the connections' own, so they take effect on new ones."""
        if file:
            self._overrides[entry_id] = paths.load_file(entry_id, file)
        self.shipped.add(entry_id)
        if self._roles.get("session") == entry_id:
            await self.db.renew(self.role("session")(self.config))

    @staticmethod
    def respond(body: Any, status: int = 200) -> Response:
        """JSON out, serialized by orjson: FastAPI's own encoder walks every value in Python and
        would make the service, not the database, the bottleneck of a lab run."""
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    def role(self, name: str) -> Any:
        return self.impl(self._roles[name])

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A connection for one request, got the way this run's `connection` path says."""
        return self.role("connection")(self.db)

    def generate(self, prompt: str) -> AsyncIterator[str]:
        return model.generate(prompt, self.config.stream_chunks, self.config.stream_interval)

    async def count_tokens(self, text: str) -> int:
        return await model.count_tokens(text, self.config.tokenizer_delay)

    async def record_message(self, conn: psycopg.AsyncConnection[Any], conversation_id: int, user_id: int,
                             body: str) -> dict[str, Any]:
        """Store a message: touch its conversation's last activity (the `touch` path), charge its
        tokens to the author (the `charge` path), insert it; all in the caller's transaction."""
        await self.role("touch")(conn, conversation_id)
        tokens = await self.role("charge")(conn, user_id, body, self.count_tokens)
        cursor = await conn.execute(
            "INSERT INTO messages (conversation_id, user_id, body, tokens) VALUES (%s, %s, %s, %s) RETURNING id",
            (conversation_id, user_id, body, tokens))
        row = await cursor.fetchone()
        return {"id": row[0] if row else None, "tokens": tokens}


def shared_routes(router: APIRouter, service: Service) -> None:
    """The routes that are no anti-pattern's: health, the lab's counters, plain reads and writes."""

    @router.get("/health")
    async def health() -> Response:
        return service.respond({"ok": True})

    @router.post("/_lab/fix/{entry_id}")
    async def ship(entry_id: str, request: Request) -> Response:
        """Only the process that started the service knows its token: any local user can reach
        127.0.0.1, and a fix may name a file of code to load."""
        if not service.config.control_token or request.headers.get("x-pglab-token") != service.config.control_token:
            return service.respond({"error": "forbidden"}, status=403)
        if entry_id not in paths.available():
            return service.respond({"error": f"no code path {entry_id}"}, status=404)
        body = orjson.loads(await request.body() or b"{}")
        await service.ship_fix(entry_id, body.get("file"))
        return service.respond({"shipped": sorted(service.shipped)})

    @router.get("/_lab/stats")
    async def lab_stats() -> Response:
        return service.respond({"requests": service.requests, "errors": service.errors,
                                "in_flight": service.in_flight, **service.db.stats()})

    @router.get("/users/{user_id}/conversations")
    async def list_conversations(user_id: int) -> Response:
        async with service.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, title, updated_at FROM conversations WHERE owner_id = %s ORDER BY updated_at DESC, id"
                " LIMIT 20", (user_id,))
            rows = await cursor.fetchall()
        return service.respond([{"id": i, "title": title, "updated_at": at} for i, title, at in rows])

    @router.get("/users/{user_id}/notifications")
    async def notifications(user_id: int) -> Response:
        async with service.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, kind, message_id, read_at, created_at FROM notifications WHERE user_id = %s"
                " ORDER BY id DESC LIMIT 20", (user_id,))
            rows = await cursor.fetchall()
        return service.respond([{"id": i, "kind": k, "message_id": m, "read_at": r, "created_at": at}
                                for i, k, m, r, at in rows])


def create_app(config: ServiceConfig) -> FastAPI:
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.db.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    router = APIRouter()
    shared_routes(router, service)
    for entry_id in paths.available():
        routes = getattr(paths.module(entry_id), "routes", None)
        if routes is not None:
            routes(router, service, lambda *args, _id=entry_id, **kwargs: service.impl(_id)(*args, **kwargs))
    app.include_router(router)
    _handle_errors(app, service)
    return app


class Counting:
    """Counts requests, 5xx answers and requests in flight for `/_lab/stats`; plain ASGI, since
    Starlette's `@app.middleware("http")` costs a task and a stream copy per request. A response's
    background tasks run inside the app call, so a request counts as in flight until its background
    work is done too: the probes wait for that before they read the rows."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.service.requests += 1

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 500:
                self.service.errors += 1
            await send(message)

        self.service.in_flight += 1
        try:
            await self.app(scope, receive, counted)
        finally:
            self.service.in_flight -= 1


def _handle_errors(app: FastAPI, service: Service) -> None:
    """Bad input is a 400, no connection a 503, a database error a 500: each one line of JSON."""

    app.add_middleware(Counting, service=service)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors())
        return service.respond({"error": problems}, status=400)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, error: Unavailable) -> Response:
        response = service.respond({"error": str(error)}, status=503)
        response.headers["Retry-After"] = "1"  # the client may come back: the service is busy, not broken
        return response

    @app.exception_handler(psycopg.Error)
    async def database_error(request: Request, error: psycopg.Error) -> Response:
        return service.respond({"error": f"{type(error).__name__}: {error}"}, status=500)
