"""Charging a posted message's tokens to its author's account.

Naive: read the balance, work out the new one in Python (after the tokenizer call), write it back.
Two posts by the same user that overlap both read the same balance, and the second write erases
the first: a lost update, silently, with no error anywhere.
Fixed: `UPDATE ... SET tokens_used = tokens_used + %s`, which Postgres applies atomically under
the row lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

Tokenizer = Callable[[str], Awaitable[int]]


async def naive(conn: psycopg.AsyncConnection[Any], user_id: int, body: str, count_tokens: Tokenizer) -> int:
    balance = await (await conn.execute("SELECT tokens_used FROM users WHERE id = %s", (user_id,))).fetchone()
    tokens = await count_tokens(body)
    await conn.execute("UPDATE users SET tokens_used = %s WHERE id = %s",
                       ((balance[0] if balance else 0) + tokens, user_id))
    return tokens


async def fixed(conn: psycopg.AsyncConnection[Any], user_id: int, body: str, count_tokens: Tokenizer) -> int:
    tokens = await count_tokens(body)
    await conn.execute("UPDATE users SET tokens_used = tokens_used + %s WHERE id = %s", (tokens, user_id))
    return tokens
