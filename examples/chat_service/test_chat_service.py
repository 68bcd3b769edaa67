"""The lab's chat service under pglab's pytest plugin: each anti-pattern's naive code path fails its
test (marked xfail, strict: if pglab stopped catching it the suite would fail), and the fixed path
passes. Run `python -m pytest --runxfail` here to read the failure messages pglab writes.
"""

from __future__ import annotations

import psycopg
import pytest

from pglab.lab.core.fixes import fix_blocks

NAIVE = pytest.mark.xfail(reason="the naive code path: pglab fails it")


def naive_and_fixed(entry_id: str) -> pytest.MarkDecorator:
    """Run the test twice: with the service's naive path for `entry_id`, then with the fixed one."""
    return pytest.mark.parametrize("naive", [pytest.param({entry_id}, marks=NAIVE, id="naive"),
                                             pytest.param(set(), id="fixed")])


@naive_and_fixed("n_plus_one")
def test_reading_a_conversation(chat, naive):
    page = chat(naive=naive).json("GET", "/conversations/1")
    assert 0 < len(page["messages"]) <= 100  # conversation 1 holds 100 messages; the service pages them
    assert all(message["author"] for message in page["messages"])


@naive_and_fixed("fanout_loop")
def test_broadcast(chat, naive):
    assert chat(naive=naive).json("POST", "/broadcast", {"kind": "maintenance"}) == {"recipients": 200}


@naive_and_fixed("streaming_txn")
def test_streamed_reply(chat, naive):
    client = chat(naive=naive, stream_chunks=5, stream_interval=0.2, tokenizer_delay=0.0)
    status, reply = client.request("POST", "/conversations/1/stream", {"user_id": 1, "prompt": "hello"})
    assert status == 200 and reply


@naive_and_fixed("correlated_subquery")
def test_token_history(chat, naive):
    rows = chat(naive=naive).json("GET", "/conversations/1/tokens")  # newest first
    assert rows
    assert all(later["running_total"] - earlier["running_total"] == later["tokens"]
               for later, earlier in zip(rows, rows[1:], strict=False))


@pytest.mark.pglab(plan_scale=100)
@pytest.mark.parametrize("migrated", [pytest.param(False, marks=NAIVE, id="naive"), pytest.param(True, id="fixed")])
def test_listing_messages_at_production_scale(chat, pglab_db, migrated):
    """5,000 test messages evaluated as 500,000: the missing index shows although the table is small."""
    if migrated:
        with psycopg.connect(pglab_db, autocommit=True) as conn:
            conn.execute(fix_blocks("missing_index")["migrate"])
    assert 0 < len(chat().json("GET", "/conversations/1/messages")) <= 100
