"""What a restore brings back besides the text: each message's expiry and the message it quotes,
recorded on the restored device from the mailbox records (a restore stores its pages in bulk and
looks up only the messages that carry either)."""

from __future__ import annotations

from tests.conftest import eventually


async def test_a_restored_device_keeps_each_messages_expiry_and_quote(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    code = await alice.setup_recovery()
    plain = await bob.send_text("alice", "an ordinary message")
    await eventually(lambda: len(alice.messages("bob")) == 1, message="delivered")
    reply = await alice.send_text("bob", "a reply", reply_to=plain.message_id)
    bob.controls.set_timer("alice", 300)
    await eventually(lambda: alice.controls.timer("bob") == 300, message="timer set")
    fleeting = await alice.send_text("bob", "gone in five minutes")
    expires_at = alice.controls.expires_at(fleeting.message_id)
    assert expires_at is not None
    await alice.wait_saved()

    device = await accounts.pending("alice")
    await device.restore(code=code)
    await device.backfill()
    restored = {m.message_id for m in device.messages("bob") if not m.system}
    assert {plain.message_id, reply.message_id, fleeting.message_id} <= restored
    assert device.controls.expires_at(fleeting.message_id) == expires_at
    assert device.controls.expires_at(plain.message_id) is None
    assert device.controls.quote(reply.message_id) is not None
    assert device.controls.quote(reply.message_id)[0] == plain.message_id
