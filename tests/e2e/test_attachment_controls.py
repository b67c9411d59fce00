"""Attachments in the other controls, end to end with the real relay: an edit changes only the
caption, within a caption's length (a longer one from a hostile sender is dropped); a quote of
an attachment without a caption names the file; a message removed while its file uploads or
downloads never leaves and leaves nothing in the profile."""

from __future__ import annotations

import asyncio
import os

import pytest

from client.core.attachments import REMOVED, AttachmentFailed
from client.core.controls import ControlRefused
from relay.handlers import HANDLERS
from shared import wire
from shared.controls import Edit
from shared.envelope import MAX_CAPTION
from tests.conftest import eventually


async def _sent(accounts, tmp_path, caption: str = "the harbour"):  # type: ignore[no-untyped-def]
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    source = tmp_path / "harbour.jpg"
    source.write_bytes(os.urandom(50_000))
    sent = await alice.attachments.send_file("bob", source, caption=caption)
    await eventually(lambda: bob.attachments.get(sent.message_id) is not None, message="arrives")
    return alice, bob, sent.message_id


async def test_an_edit_changes_the_caption_within_a_captions_length(accounts, tmp_path):
    alice, bob, message_id = await _sent(accounts, tmp_path)
    pointer = bob._store.attachment(message_id).pointer
    with pytest.raises(ControlRefused):
        alice.controls.edit(message_id, "x" * (MAX_CAPTION + 1))
    # A hostile sender skips its own check: every receiving device drops the edit.
    alice.controls._send("bob", Edit(target=message_id, version=2, body="y" * 5000), ["bob"])
    alice.controls.edit(message_id, "the harbour at dawn")
    await eventually(
        lambda: bob.message(message_id).body == "the harbour at dawn", message="caption edited"
    )
    assert bob.controls.versions(message_id) == ["the harbour", "the harbour at dawn"]
    assert bob._store.attachment(message_id).pointer == pointer  # the file is the same


async def test_a_quote_of_an_attachment_without_a_caption_names_the_file(accounts, tmp_path):
    alice, bob, message_id = await _sent(accounts, tmp_path, caption="")
    reply = await bob.send_text("alice", "nice", reply_to=message_id)
    await eventually(lambda: alice.message(reply.message_id) is not None, message="reply")
    assert alice.controls.quote(reply.message_id) == (message_id, "alice", "📎 harbour.jpg")


async def test_a_message_deleted_while_it_uploads_never_leaves(
    accounts, relay, tmp_path, monkeypatch
):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 * wire.BLOB_FRAME))
    upload = HANDLERS[wire.UploadChunk]
    go_on = asyncio.Event()

    async def held(session, frame):  # type: ignore[no-untyped-def]
        await go_on.wait()
        return await upload(session, frame)

    monkeypatch.setitem(HANDLERS, wire.UploadChunk, held)
    sending = asyncio.ensure_future(alice.attachments.send_file("bob", source))
    await eventually(lambda: len(alice.messages("bob")) == 1, message="shown while it uploads")
    alice.controls.delete_for_me([alice.messages("bob")[0].message_id])
    go_on.set()
    with pytest.raises(AttachmentFailed) as failed:
        await sending
    assert failed.value.reason == REMOVED
    marker = await alice.send_text("bob", "after")
    await eventually(lambda: bob.message(marker.message_id) is not None, message="marker")
    assert [m.message_id for m in bob.messages("alice")] == [marker.message_id]


async def test_a_message_deleted_while_it_downloads_leaves_no_file(accounts, tmp_path, monkeypatch):
    _alice, bob, message_id = await _sent(accounts, tmp_path)
    fetch = HANDLERS[wire.FetchBlob]
    go_on = asyncio.Event()

    async def held(session, frame):  # type: ignore[no-untyped-def]
        await go_on.wait()
        return await fetch(session, frame)

    monkeypatch.setitem(HANDLERS, wire.FetchBlob, held)
    downloading = asyncio.ensure_future(bob.attachments.download(message_id))
    await eventually(lambda: (bob.profile_dir / "attachments").exists(), message="started")
    bob.controls.delete_for_me([message_id])
    go_on.set()
    with pytest.raises(AttachmentFailed) as failed:
        await downloading
    assert failed.value.reason == REMOVED
    assert not any((bob.profile_dir / "attachments").iterdir())
