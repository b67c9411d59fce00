"""A disappearing message this device wrote disappears here on time, one-to-one and in a group:
storing it wakes the expiry loop, which otherwise looks again only after ``LONGEST_SLEEP`` (a
minute) or at the next expiry it knew of. The timer's shortest choice is five minutes, so the
time a new message expires at is shortened here to a second and a half: that is what a test
cannot wait for, not what is tested."""

from __future__ import annotations

from client.core import departure
from client.core.control_sync import LONGEST_SLEEP
from tests.conftest import eventually

SOON_MS = 1_500


def _held(client, thread: str, message_id: bytes) -> bool:
    return any(m.message_id == message_id for m in client.messages(thread))


async def test_an_own_timed_message_disappears_on_time_where_it_was_written(accounts, monkeypatch):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    carol = await accounts.create("carol")
    group = (await alice.groups.create("Climbing", ["bob", "carol"])).thread
    alice.controls.set_timer("bob", 300)
    alice.controls.set_timer(group, 300)
    await eventually(
        lambda: bob.controls.timer("alice") == 300 and carol.controls.timer(group) == 300,
        message="the timers reached the others",
    )
    # The loop has gone back to sleep with nothing due: it would look again in a minute.
    await eventually(lambda: not alice.control_sync.wake.is_set(), message="the loop sleeps")
    assert alice.context.store.next_expiry() is None
    monkeypatch.setattr(
        departure, "expires_at", lambda sent_at, seconds: sent_at + SOON_MS if seconds else None
    )
    one = await alice.send_text("bob", "gone in a moment")
    many = await alice.send_text(group, "gone in a moment too")
    assert _held(alice, "bob", one.message_id) and _held(alice, group, many.message_id)
    await eventually(
        lambda: (
            not _held(alice, "bob", one.message_id) and not _held(alice, group, many.message_id)
        ),
        timeout=LONGEST_SLEEP / 4,
        message="both disappeared on time",
    )
