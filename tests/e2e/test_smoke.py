from __future__ import annotations

import pytest

from client.core.events import MessageStatus
from tests.conftest import conversation, eventually

pytestmark = pytest.mark.backends()


async def test_alice_and_bob_exchange_messages(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    sent = await alice.send_text("bob", "hello bob")
    await eventually(lambda: len(bob.messages("alice")) == 1, message="bob receives")
    assert bob.messages("alice")[0].body == "hello bob"
    await bob.send_text("alice", "hi alice")
    await eventually(lambda: len(alice.messages("bob")) == 2, message="alice receives")
    await eventually(
        lambda: alice._store.message(sent.message_id).status is MessageStatus.DELIVERED,
        message="delivered",
    )
    assert conversation(alice, "bob") == conversation(bob, "alice")
