"""A transaction held across a bulk task's writes and awaits (a restore's backfill): it commits
when another task wants the store, before a long wait, every so many rows, and when the task is
cancelled; an error rolls back only what it had not committed. Another connection to the same
file tells what is committed."""

from __future__ import annotations

import asyncio

import pytest
import sqlcipher3

from client.core.held_transaction import HeldTransaction
from client.core.storage import ProfileStore


@pytest.fixture
def store(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)  # plain, so a second connection can read it
    yield store
    store.close()


def committed(store: ProfileStore, key: str) -> bool:
    # (The store's own SQLite library: two libraries in one process break each other's locks.)
    reader = sqlcipher3.connect(store.path)
    try:
        return reader.execute("SELECT 1 FROM profile WHERE key = ?", (key,)).fetchone() is not None
    finally:
        reader.close()


async def write(store: ProfileStore, held: HeldTransaction, key: str) -> None:
    await held.begin()
    with store.transaction():
        store.put(key, 1)
    await held.wrote(1)


async def test_rows_are_committed_every_so_many_and_on_leaving(store):
    async with HeldTransaction(store, every=3) as held:
        for i in range(4):
            await write(store, held, f"row{i}")
        assert committed(store, "row2") and not committed(store, "row3")
    assert committed(store, "row3")


async def test_another_task_that_waits_to_write_gets_in_after_one_write(store):
    order: list[str] = []

    async def live_message() -> None:
        async with store.transaction():
            store.put("live", 1)
            order.append("live")

    async with HeldTransaction(store, every=1_000) as held:
        await write(store, held, "first")
        other = asyncio.ensure_future(live_message())
        await asyncio.sleep(0)  # it is now waiting for the store
        await write(store, held, "second")  # commits: someone waits
        assert committed(store, "second")
        await write(store, held, "third")  # waits for the live message's transaction
        order.append("third")
        await other
    assert order == ["live", "third"] and committed(store, "live")


async def test_writes_joined_by_another_task_are_committed_after_one_write(store):
    async def draft() -> None:
        with store.transaction():  # joins the held transaction
            store.put("draft", 1)

    async with HeldTransaction(store, every=1_000) as held:
        await write(store, held, "first")
        await asyncio.ensure_future(draft())
        assert not committed(store, "draft")
        await write(store, held, "second")
        assert committed(store, "draft")


async def test_a_long_wait_commits_first_and_a_short_one_does_not(store):
    async with HeldTransaction(store, every=1_000) as held:
        await write(store, held, "before a quick page")
        quick = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(quick.set_result, "page")
        assert await held.wait(quick, patience=30.0) == "page"
        assert not committed(store, "before a quick page")

        await write(store, held, "before a slow page")
        slow = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(held.wait(slow, patience=0.01))
        deadline = asyncio.get_running_loop().time() + 30
        while not committed(store, "before a slow page"):
            assert asyncio.get_running_loop().time() < deadline, "not committed while waiting"
            await asyncio.sleep(0.01)
        slow.set_result("page")
        assert await waiting == "page"


async def test_a_cancelled_task_keeps_its_whole_writes(store):
    async def backfill(held_every: int) -> None:
        async with HeldTransaction(store, every=held_every) as held:
            await write(store, held, "whole write")
            await asyncio.get_running_loop().create_future()  # the next page never comes

    task = asyncio.ensure_future(backfill(1_000))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert committed(store, "whole write") and not store.in_transaction


async def test_an_error_rolls_back_only_what_was_not_committed(store):
    with pytest.raises(RuntimeError):
        async with HeldTransaction(store, every=2) as held:
            await write(store, held, "one")
            await write(store, held, "two")  # committed with "one"
            await write(store, held, "three")
            raise RuntimeError("a write failed")
    assert committed(store, "two") and not committed(store, "three")
    assert store.get("three") is None and not store.in_transaction
