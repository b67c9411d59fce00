"""A message the relay accepted survives a power loss: the relay is SIGKILLed before any
checkpoint and its write-ahead log cut mid-frame, as a power cut leaves it (with
``synchronous=FULL`` the disk would hold every answered commit; the cut here takes answered ones
too, as the disk cache of a machine that lies about syncing would). Every accepted message is then
either still queued or offered again by its sender, and delivered once."""

from __future__ import annotations

import sqlite3

import pytest

from client.core.client import AriadneClient
from client.core.events import MessageStatus
from tests.conftest import FAST, PASSWORD, eventually
from tests.e2e.processes import RelayProcess, cut_wal, wal_frames


def _queued_for(database, device_id: str) -> int:
    db = sqlite3.connect(database)  # recovers the log as the restarted relay will
    try:
        return db.execute(
            "SELECT count(*) FROM queue WHERE device_id = ?", (device_id,)
        ).fetchone()[0]
    finally:
        db.close()


def _statuses(client: AriadneClient, thread: str) -> set[MessageStatus]:
    return {m.status for m in client.messages(thread) if m.sender_user == client.username}


def _said(client: AriadneClient, thread: str) -> list[tuple[bytes, str, str]]:
    """The conversation's messages in order: id, sender, text (system lines left out: each
    device words them for its user)."""
    return [(m.message_id, m.sender_user, m.body) for m in client.messages(thread) if not m.system]


def _texts(client: AriadneClient, thread: str) -> list[str]:
    return [body for _, _, body in _said(client, thread)]


@pytest.mark.parametrize("kind", ["one-to-one", "group"])
async def test_accepted_messages_survive_a_cut_write_ahead_log(tmp_path, kind):
    relay = RelayProcess(tmp_path / "relay")
    await relay.start()
    clients: list[AriadneClient] = []
    try:
        alice = await AriadneClient.create_account(
            tmp_path / "alice", relay.url, "alice", PASSWORD, "Desktop", backoff=FAST
        )
        bob = await AriadneClient.create_account(
            tmp_path / "bob", relay.url, "bob", PASSWORD, "Desktop", backoff=FAST
        )
        clients += [alice, bob]
        await eventually(lambda: alice.is_member and bob.is_member)
        thread, theirs = "bob", "alice"  # alice's name for the conversation, and bob's
        if kind == "group":  # sent once under a sender key (GroupSend), offered again so too
            thread = theirs = (await alice.groups.create("Climbing", ["bob"])).thread
            await eventually(lambda: bob.groups.state(thread) is not None)
        await alice.send_text(thread, "hello")
        await eventually(lambda: _statuses(alice, thread) == {MessageStatus.DELIVERED})
        await bob.close()
        clients.remove(bob)

        wal = relay.database.with_name("relay.sqlite3-wal")
        _, before = wal_frames(wal)
        texts = [f"before the power cut {i}" for i in range(30)]
        for text in texts:
            await alice.send_text(thread, text)
        await eventually(
            lambda: (
                _statuses(alice, thread) == {MessageStatus.DELIVERED, MessageStatus.SENT}
                and len(_texts(alice, thread)) == 31
            ),
            message="the relay accepted all 30",
        )
        await relay.kill()  # no checkpoint: everything since the start is in the log
        _, after = wal_frames(wal)
        assert before < after < 900, "the log was not checkpointed meanwhile"
        cut_wal(wal, (before + after) // 2)
        still_queued = _queued_for(relay.database, bob.device_id)
        assert 0 < still_queued < 30, "the cut took some accepted messages, not all"

        await relay.start()  # alice reconnects and offers what bob has not confirmed again
        bob = await AriadneClient.open(tmp_path / "bob", backoff=FAST)
        clients.append(bob)
        await eventually(
            lambda: len(_texts(bob, theirs)) == 31, timeout=30, message="bob has them all"
        )
        assert _texts(bob, theirs) == ["hello", *texts]
        await eventually(
            lambda: _statuses(alice, thread) == {MessageStatus.DELIVERED},
            message="alice sees every one delivered",
        )
        assert _said(alice, thread) == _said(bob, theirs)
        assert not alice._store.unconfirmed(), "confirmed messages are not offered again"
    finally:
        for client in clients:
            await client.close()
        await relay.stop()
