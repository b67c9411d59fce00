"""An inbox batch is one transaction its loop owns: no other loop commits half of it.

The inbox decrypts a batch with awaits in between (a session's lock, a sender's device list
fetched from the relay), and every loop of the client writes on the same connection. If another
loop committed while a batch was half-way, a crash right then would leave the batch's first
messages and ratchet steps durable but unacknowledged and without their delivery receipts: the
relay redelivers them, the ratchet drops them as duplicates, and the sender never learns they
arrived. The test holds a batch half-way, commits from the other loops, and reads the profile
from a second connection, as a restarted process would find it.
"""

from __future__ import annotations

import asyncio

from client.core.events import MessageStatus
from client.core.storage import ProfileStore
from tests.client.engine import committed_reader
from tests.conftest import eventually


def _bodies(store: ProfileStore, thread: str) -> list[str]:
    return [m.body for m in store.thread_messages(thread)]


async def test_no_other_loop_commits_half_an_inbox_batch(accounts):
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob.messages("alice")) == 1, message="first contact")
    await accounts.stop(bob)
    # Queued while bob is away, so the relay delivers both in one frame: one batch.
    two = await laptop.send_text("bob", "two")
    await eventually(lambda: laptop._store.message(two.message_id).status is MessageStatus.SENT)
    await alice.send_text("bob", "one")
    await eventually(lambda: alice.messages("bob")[-1].status is MessageStatus.SENT)
    reader = committed_reader(bob.profile_dir, encrypt=True)  # what a restarted bob would find
    bob = await accounts.start(bob)
    try:
        # Park the batch half-way: it decrypts the laptop's "two", then waits for the session
        # with alice's desktop before "one".
        from_desktop = bob.sessions.locks[("alice", alice.device_id)]
        await from_desktop.acquire()
        await eventually(lambda: "two" in _bodies(bob._store, "alice"), message="half a batch")

        # The other loops write and commit meanwhile: the outbox, the user's own actions.
        await bob.send_text("alice", "meanwhile")
        bob.mark_verified("alice")
        await asyncio.sleep(0)
        assert "two" not in _bodies(reader, "alice"), "half an inbox batch was committed"

        from_desktop.release()
        await eventually(
            lambda: {"one", "two", "meanwhile"} <= set(_bodies(reader, "alice")),
            message="the whole batch and the other writes committed",
        )
        assert reader.verified("alice")
        one = next(m for m in alice.messages("bob") if m.body == "one")
        await eventually(
            lambda: alice._store.message(one.message_id).status is MessageStatus.DELIVERED,
            message="the batch's receipts went out",
        )
    finally:
        reader.close()
