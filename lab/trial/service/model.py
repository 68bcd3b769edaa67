"""Slow work that is not the database's: a model that streams its answer, a tokenizer service.

They stand in for the remote calls a chat service makes; what matters to the lab is only that they
take wall-clock time, during which a naive code path keeps a connection or a transaction open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


async def generate(prompt: str, chunks: int, interval: float) -> AsyncIterator[str]:
    """An answer emitted chunk by chunk over `chunks * interval` seconds."""
    words = prompt.split() or ["hello"]
    for index in range(chunks):
        await asyncio.sleep(interval)
        yield words[index % len(words)] + " "


async def count_tokens(text: str, delay: float) -> int:
    """A tokenizer behind a network hop: one token per word, after `delay` seconds."""
    await asyncio.sleep(delay)
    return max(1, len(text.split()))
