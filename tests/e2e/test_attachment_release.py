"""Attachments of removed messages, end to end (PROTOCOL.md §11 "Releasing a blob"): real relay
on 127.0.0.1, two users with two devices each, one offline during the action. When a message
with an attachment is unsent or expires, every device deletes its files and each account
releases its reference, so the relay deletes the blob; a deletion for me releases only this
account's reference (the other account still downloads it); a restored device never shows the
attachment again, and the sender's own file outside the profile is never touched."""

from __future__ import annotations

import os
from pathlib import Path

from client.core import clock as clock_module
from client.core.events import MessageStatus
from relay.handlers import controls as relay_controls
from shared.attachment import decode_pointer
from tests.conftest import eventually


async def _pair(accounts):  # type: ignore[no-untyped-def]
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    alice2 = await accounts.add_device(alice, "Laptop")
    bob2 = await accounts.add_device(bob, "Laptop")
    return alice, alice2, bob, bob2


async def _sent_everywhere(devices, tmp_path: Path, size: int = 200_000):  # type: ignore[no-untyped-def]
    alice = devices[0]
    source = tmp_path / "holiday.jpg"
    source.write_bytes(os.urandom(size))
    message = await alice.attachments.send_file(
        "bob", source, caption="look", content_type="image/jpeg", thumbnail=b"\xff\xd8thumb"
    )
    await eventually(
        lambda: (
            all(d.attachments.get(message.message_id) is not None for d in devices)
            and alice._store.message(message.message_id).server_ts is not None
        ),
        message="the attachment reached every device",
    )
    return source, message.message_id


def _blob(relay, client, message_id: bytes):  # type: ignore[no-untyped-def]
    """The blob's file in the relay's store and its id (from a device that holds the pointer)."""
    blob_id = decode_pointer(client._store.attachment(message_id).pointer).blob_id
    return relay.relay.store.blob_dir / blob_id.hex(), blob_id


def _held(client) -> list[Path]:  # type: ignore[no-untyped-def]
    """What the device keeps in its profile's attachment folder."""
    folder = client.profile_dir / "attachments"
    return sorted(folder.iterdir()) if folder.exists() else []


def _gone_here(client, message_id: bytes) -> bool:  # type: ignore[no-untyped-def]
    return (
        client.attachments.get(message_id) is None
        and _held(client) == []
        and client._store.releases(-1) == []
    )


async def test_unsend_deletes_the_blob_on_the_relay_and_the_files_on_every_device(
    accounts, relay, tmp_path
):
    alice, alice2, bob, bob2 = devices = await _pair(accounts)
    code = await bob.setup_recovery()
    source, message_id = await _sent_everywhere(devices, tmp_path)
    blob_file, blob_id = _blob(relay, bob, message_id)
    for device in (alice2, bob, bob2):
        await device.attachments.download(message_id)
        assert len(_held(device)) == 1
    await accounts.stop(bob2)  # its file stays on disk while it is closed

    alice.controls.unsend(message_id)
    online = (alice, alice2, bob)
    await eventually(
        lambda: all(_gone_here(d, message_id) for d in online), message="files gone online"
    )
    await eventually(
        lambda: not blob_file.exists() and relay.relay.store.blob(blob_id) is None,
        message="both accounts released the blob: the relay deleted it",
    )
    for device in online:
        assert device._store.message(message_id).status is MessageStatus.UNSENT
    assert source.exists()  # the sender's own file is the user's, not the profile's

    bob2 = await accounts.start(bob2)  # applies the unsend on its return; its release is a no-op
    await eventually(lambda: _gone_here(bob2, message_id), message="the laptop's file gone")
    assert bob2._store.message(message_id).status is MessageStatus.UNSENT

    restored = await accounts.pending("bob", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    assert restored.attachments.get(message_id) is None  # no thumbnail, no file
    assert _held(restored) == []


async def test_an_expired_attachment_goes_everywhere_with_its_blob(
    accounts, relay, tmp_path, monkeypatch
):
    alice, alice2, bob, bob2 = devices = await _pair(accounts)
    code = await alice.setup_recovery()
    bob.controls.set_timer("alice", 300)
    await eventually(
        lambda: all(
            d.controls.timer("bob" if d.username == "alice" else "alice") == 300 for d in devices
        ),
        message="timer set",
    )
    _, message_id = await _sent_everywhere(devices, tmp_path)
    assert all(d.controls.expires_at(message_id) is not None for d in devices)
    blob_file, blob_id = _blob(relay, bob, message_id)
    for device in (bob, bob2):
        await device.attachments.download(message_id)
    for device in devices:
        await device.wait_saved()
    await accounts.stop(bob2)

    later = 6 * 60 * 1000
    real = clock_module.system_ms
    monkeypatch.setattr(clock_module, "system_ms", lambda: real() + later)
    monkeypatch.setattr(relay_controls, "relay_now_us", lambda: (real() + later) * 1000)
    for device in (alice, alice2, bob):
        device.control_sync.wake.set()
    await eventually(
        lambda: all(_gone_here(d, message_id) for d in (alice, alice2, bob)),
        message="expired on the online devices, thumbnail and files",
    )
    for device in (alice, alice2, bob):
        assert device._store.message(message_id) is None
    await eventually(
        lambda: not blob_file.exists() and relay.relay.store.blob(blob_id) is None,
        message="the relay deleted the expired blob",
    )
    bob2 = await accounts.start(bob2)  # expires it on start, before anything is shown
    assert bob2.attachments.get(message_id) is None
    await eventually(lambda: _gone_here(bob2, message_id), message="the laptop's file gone")

    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    assert restored.attachments.get(message_id) is None and _held(restored) == []


async def test_delete_for_me_releases_only_this_accounts_reference(accounts, relay, tmp_path):
    alice, alice2, bob, bob2 = devices = await _pair(accounts)
    _, message_id = await _sent_everywhere(devices, tmp_path)
    blob_file, blob_id = _blob(relay, bob, message_id)
    for device in (bob, bob2):
        await device.attachments.download(message_id)

    bob.controls.delete_for_me([message_id])
    await eventually(
        lambda: all(_gone_here(d, message_id) for d in (bob, bob2)),
        message="gone from both of bob's devices",
    )
    await eventually(
        lambda: not relay.relay.store.blob_readable_by(blob_id, "bob"),
        message="bob's account released its reference",
    )
    assert blob_file.exists()  # alice's account still holds it
    path = await alice2.attachments.download(message_id)
    assert path.stat().st_size == 200_000

    alice.controls.delete_conversation("bob")  # the last reference goes with alice's
    await eventually(
        lambda: all(_gone_here(d, message_id) for d in (alice, alice2)),
        message="gone from both of alice's devices",
    )
    await eventually(
        lambda: not blob_file.exists() and relay.relay.store.blob(blob_id) is None,
        message="the relay deleted the blob with its last reference",
    )
