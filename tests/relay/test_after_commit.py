"""What a fan-out's sender and recipients get after the group commit (``RelayStore.when_durable``):
``Accepted`` and the pushes only when the commit succeeded, and every answer of a commit even
when one of them fails."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from relay.store import RelayStore
from shared import wire


async def test_a_failed_commit_is_answered_not_stored_and_pushes_nothing(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    line = kit.connect(bob)
    db = kit.store._db
    # A real commit failure: a deferred constraint that the open transaction breaks.
    db.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute(
        "CREATE TEMP TABLE child (id INTEGER REFERENCES parent DEFERRABLE INITIALLY DEFERRED)"
    )
    db.execute("INSERT INTO child VALUES (1)")
    send = wire.Send(
        rid=7,
        send_id=os.urandom(16),
        recipients=[
            wire.RecipientEnvelopes(
                username="bob",
                envelopes=[wire.Envelope(device_id=bob.device_id, payload=b"sealed")],
            )
        ],
    )
    assert await kit.call(alice, send) is None
    with pytest.raises(sqlite3.IntegrityError):
        await kit.store.durable()
    assert alice.replies == [
        wire.Error(rid=7, code=wire.ErrorCode.INTERNAL_ERROR, detail="not stored")
    ]
    assert line.envelopes == []
    db.execute("DELETE FROM child")
    await kit.store.durable()


async def test_one_failing_answer_does_not_keep_the_others_of_its_commit(tmp_path: Path):
    store = RelayStore(tmp_path / "relay.sqlite3")
    answered: list[BaseException | None] = []

    def broken(error: BaseException | None) -> None:
        raise RuntimeError("a bug in one answer")

    store.when_durable(broken)
    store.when_durable(answered.append)
    await store.durable()
    assert answered == [None]
    store.close()
