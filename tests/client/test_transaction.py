"""ProfileStore.transaction(): who commits, who waits, and what a failure undoes."""

from __future__ import annotations

import asyncio

import pytest

from client.core.storage import ProfileStore
from tests.client.engine import committed_reader


@pytest.fixture
def stores(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    reader = committed_reader(tmp_path)  # sees only what was committed
    yield store, reader
    store.close()
    reader.close()


def test_the_outermost_block_commits_and_a_nested_one_joins(stores):
    store, reader = stores
    with store.transaction():
        store.put("a", 1)
        with store.transaction():
            store.put("b", 2)
        assert reader.get("b") is None  # the inner block committed nothing
    assert (reader.get("a"), reader.get("b")) == (1, 2)


def test_a_failing_block_rolls_back_everything_it_owns(stores):
    store, _ = stores
    with pytest.raises(ValueError), store.transaction():
        store.put("a", 1)
        raise ValueError
    assert store.get("a") is None and not store.in_transaction


def test_commit_inside_a_transaction_is_refused(stores):
    store, _ = stores
    with store.transaction(), pytest.raises(RuntimeError):
        store.commit()


async def test_another_task_waits_and_its_plain_writes_join_the_open_transaction(stores):
    store, reader = stores
    parked = asyncio.Event()
    go_on = asyncio.Event()

    async def batch() -> None:
        async with store.transaction():
            store.put("batch", 1)
            parked.set()
            await go_on.wait()

    async def other_loop() -> None:
        async with store.transaction():
            store.put("other", 1)

    first = asyncio.create_task(batch())
    await parked.wait()
    second = asyncio.create_task(other_loop())
    with store.transaction():  # synchronous code meanwhile: joins the batch, commits nothing
        store.put("plain", 1)
    for _ in range(10):  # let the other loop run as far as it can
        await asyncio.sleep(0)
    assert not second.done()  # waits for the batch's owner
    assert reader.get("batch") is None and reader.get("plain") is None
    go_on.set()
    await asyncio.gather(first, second)
    assert (reader.get("batch"), reader.get("plain"), reader.get("other")) == (1, 1, 1)


async def test_a_failing_owner_keeps_the_writes_another_task_joined(stores):
    """The outbox's encryption fails (offline, a relay limit) while the user's message, stored
    meanwhile, joined its transaction: the message is not lost with the rollback."""
    store, reader = stores
    parked = asyncio.Event()
    go_on = asyncio.Event()

    async def failing_owner() -> None:
        async with store.transaction():
            store.put("ratchet", 1)
            parked.set()
            await go_on.wait()
            raise ConnectionError

    owner = asyncio.create_task(failing_owner())
    await parked.wait()
    with store.transaction():
        store.put("message", 1)
    go_on.set()
    with pytest.raises(ConnectionError):
        await owner
    assert reader.get("message") == 1


def test_a_block_that_keeps_its_writes_commits_them_when_it_fails(stores):
    """The outbox's encryption: sessions in memory moved on, so the store follows them even when
    a later recipient fails (no user, relay away)."""
    store, reader = stores
    with pytest.raises(LookupError), store.transaction(rollback=False):
        store.put("ratchet", 1)
        raise LookupError
    assert reader.get("ratchet") == 1
