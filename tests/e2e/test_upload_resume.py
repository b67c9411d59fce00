"""An attachment's upload after the app was closed half-way, end to end: real relay on
127.0.0.1, real clients, their real (encrypted SQLite) profiles closed and opened again.

The app closes after the relay committed some chunks. Opened again, the message shows as
sending with its progress, the upload goes on from what the relay holds (the relay's handler
counts what it is sent: nothing twice), and the recipient's file verifies. A file that changed
or vanished meanwhile fails the message in words, before any chunk of it is sealed: every byte
the relay is sent after the restart is the original ciphertext (so no nonce ever seals two
plaintexts), and no message leaves. A relay that lost the partial blob meanwhile gets the same
ciphertext again in a new one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from client.core.attachment_upload import INTERRUPTED, AttachmentFailed
from client.core.events import AttachmentChanged, MessageStatus
from client.core.store_attachments import FileState
from client.core.upload_source import CHANGED, GONE
from relay.handlers import HANDLERS
from shared import wire
from shared.attachment import CHUNK, Encryptor, blob_size, decode_pointer
from tests.conftest import eventually
from tests.e2e.test_attachments import blob_held, digest, write

pytestmark = pytest.mark.backends()

FRAMES_BEFORE_CLOSE = 4
SIZE = 12 * wire.BLOB_FRAME + 12_345  # ciphertext: 13 frames


@dataclass
class Uploads:
    """The relay's UploadChunk handler, recording each chunk it committed; until ``hold`` is
    cleared it stops answering after :data:`FRAMES_BEFORE_CLOSE` (the app closes meanwhile)."""

    real: object
    written: list[tuple[bytes, int, bytes]] = field(default_factory=list)  # blob, offset, data
    hold: bool = True
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    stalled: asyncio.Event | None = None  # set: the relay answers no upload until it is set

    async def __call__(self, session, frame):  # type: ignore[no-untyped-def]
        if self.stalled is not None:
            await self.stalled.wait()
        reply = await self.real(session, frame)  # type: ignore[operator]
        if frame.data and reply.received == frame.offset + len(frame.data):
            self.written.append((frame.blob_id, frame.offset, frame.data))
            if self.hold and len(self.written) == FRAMES_BEFORE_CLOSE:
                self.committed.set()
                await self.release.wait()  # the answer never reaches the closing app
        return reply

    def sent_bytes(self) -> int:
        return sum(len(data) for _, _, data in self.written)


async def _closed_mid_upload(accounts, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Alice sends a file; the app closes after the relay committed four frames of it."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    source = write(tmp_path / "holiday.mov", SIZE)
    original = source.read_bytes()
    uploads = Uploads(HANDLERS[wire.UploadChunk])
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, uploads)
    sending = asyncio.ensure_future(alice.attachments.send_file("bob", source, caption="look"))
    try:
        await eventually(uploads.committed.is_set, message="the relay committed four frames")
        (message,) = alice.messages("bob")
        key = alice._store.pending_upload(message.message_id).key  # to check what is sent later
        await accounts.stop(alice)  # the app closes (the relay's answer is still on its way)
    finally:
        uploads.release.set()
    with pytest.raises(asyncio.CancelledError):
        await sending
    uploads.hold = False
    committed = uploads.sent_bytes()
    assert committed == FRAMES_BEFORE_CLOSE * wire.BLOB_FRAME
    return alice, bob, source, original, uploads, message.message_id, key, committed


def _ciphertext(key: bytes, plaintext: bytes) -> bytes:
    encryptor = Encryptor(key, len(plaintext))
    return encryptor.update(plaintext) + encryptor.finish()


async def test_an_upload_goes_on_from_what_the_relay_holds_after_the_app_was_closed(
    accounts, relay, tmp_path, monkeypatch
):
    alice, bob, source, original, uploads, message_id, key, committed = await _closed_mid_upload(
        accounts, tmp_path, monkeypatch
    )
    (blob_id,) = {blob for blob, _, _ in uploads.written}
    alice = await accounts.start(alice)
    shown: list[tuple[FileState, tuple[int, int] | None]] = []

    def on_event(event: object) -> None:
        if isinstance(event, AttachmentChanged) and event.message_id == message_id:
            found = alice.attachments.get(message_id)
            shown.append((found.state, found.progress))

    alice.add_listener(on_event)
    (message,) = alice.messages("bob")
    assert message.status is MessageStatus.SENDING  # shown as sending again, not failed
    assert alice.attachments.get(message_id).state is FileState.UPLOADING

    await eventually(
        lambda: alice._store.message(message_id).server_ts is not None,
        message="the message left once the upload finished",
    )
    total = blob_size(SIZE)
    # The relay was sent the rest only, into the same blob, starting where its copy ended.
    resent = uploads.written[FRAMES_BEFORE_CLOSE:]
    assert {blob for blob, _, _ in resent} == {blob_id}
    assert resent[0][1] == committed, "the upload went on from the relay's copy, not from zero"
    assert uploads.sent_bytes() == total, "nothing the relay held was sent again"
    # Its bubble showed the progress from what the relay held on, while it was uploading.
    uploading = [p for state, p in shown if state is FileState.UPLOADING and p is not None]
    assert uploading[0] == (committed, total) and uploading[-1][0] > committed
    assert alice._store.pending_upload(message_id) is None  # forgotten once queued

    await eventually(lambda: bob.attachments.get(message_id) is not None, message="arrives")
    (received,) = bob.messages("alice")
    assert received.body == "look"
    pointer = decode_pointer(bob._store.attachment(message_id).pointer)
    assert pointer.blob_id == blob_id and pointer.key == key
    path = await bob.attachments.download(message_id)
    assert digest(path) == digest(source) and path.read_bytes() == original


@pytest.mark.parametrize("change", ["held part", "rest", "grown", "deleted"])
async def test_a_file_that_changed_or_vanished_while_closed_fails_and_nothing_leaves(
    accounts, relay, tmp_path, monkeypatch, change
):
    alice, bob, source, original, uploads, message_id, key, committed = await _closed_mid_upload(
        accounts, tmp_path, monkeypatch
    )
    (blob_id,) = {blob for blob, _, _ in uploads.written}
    edited = bytearray(original)
    if change == "held part":  # a chunk the relay already holds
        edited[committed // 2] ^= 1
    elif change == "rest":  # a chunk not uploaded yet: what comes before it may still go
        edited[committed + 8 * CHUNK + 5] ^= 1
    elif change == "grown":
        edited += b"more"
    if change == "deleted":
        source.unlink()
    else:
        source.write_bytes(bytes(edited))
    if change in ("grown", "deleted"):  # shown at once, without waiting for a slow relay
        uploads.stalled = asyncio.Event()
    alice = await accounts.start(alice)
    try:
        await eventually(
            lambda: alice.attachments.get(message_id).state is FileState.FAILED,
            message="the message failed",
        )
    finally:
        if uploads.stalled is not None:
            uploads.stalled.set()
    found = alice.attachments.get(message_id)
    assert found.detail == (GONE if change == "deleted" else CHANGED)
    (message,) = alice.messages("bob")
    assert message.status is MessageStatus.FAILED and message.server_ts is None
    assert alice._store.next_outgoing() is None, "no message pointing at the blob is queued"
    assert alice._store.pending_upload(message_id) is None
    # Its file goes again by attaching it again: a retry does not send the caption alone.
    assert alice.conversations.retry(message_id) is False
    assert alice._store.next_outgoing() is None
    # Whatever the relay was sent after the restart is the original file's ciphertext: no
    # chunk of the changed file was sealed under the attachment's key.
    expected = _ciphertext(key, original)
    after = uploads.written[FRAMES_BEFORE_CLOSE:]
    for _, offset, data in after:
        assert data == expected[offset : offset + len(data)]
    if change == "rest":
        assert after, "the chunks before the changed one still went"
    else:
        assert not after
    await eventually(lambda: not blob_held(relay, blob_id), message="the relay forgot the blob")
    assert bob.messages("alice") == []


async def test_an_upload_whose_partial_blob_the_relay_lost_is_sent_again_into_a_new_one(
    accounts, relay, tmp_path, monkeypatch
):
    alice, bob, _, original, uploads, message_id, key, _ = await _closed_mid_upload(
        accounts, tmp_path, monkeypatch
    )
    (old_blob,) = {blob for blob, _, _ in uploads.written}
    store = relay.relay.store
    store.delete_blob(old_blob)  # as an unfinished upload expires after a day
    await store.durable()
    alice = await accounts.start(alice)
    await eventually(lambda: bob.attachments.get(message_id) is not None, message="arrives")
    new_blob = decode_pointer(bob._store.attachment(message_id).pointer).blob_id
    assert new_blob != old_blob
    again = [(offset, data) for blob, offset, data in uploads.written if blob == new_blob]
    expected = _ciphertext(key, original)
    assert b"".join(data for _, data in again) == expected  # the same ciphertext, whole
    assert (await bob.attachments.download(message_id)).read_bytes() == original


async def test_an_app_closed_before_the_relay_gave_a_blob_sends_it_after_the_restart(
    accounts, relay, tmp_path, monkeypatch
):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    source = write(tmp_path / "notes.txt", 3 * CHUNK + 7)
    asked, answer = asyncio.Event(), asyncio.Event()
    start = HANDLERS[wire.StartUpload]

    async def slow(session, frame):  # type: ignore[no-untyped-def]
        asked.set()
        await answer.wait()
        return await start(session, frame)

    monkeypatch.setitem(HANDLERS, wire.StartUpload, slow)
    sending = asyncio.ensure_future(alice.attachments.send_file("bob", source))
    await eventually(asked.is_set, message="the relay is asked for a blob")
    await accounts.stop(alice)
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        await sending
    monkeypatch.setitem(HANDLERS, wire.StartUpload, start)
    alice = await accounts.start(alice)
    (message,) = alice.messages("bob")
    await eventually(lambda: bob.attachments.get(message.message_id) is not None, message="arrives")
    path = await bob.attachments.download(message.message_id)
    assert digest(path) == digest(source)


async def test_an_upload_left_without_a_record_shows_as_failed_not_sending(
    accounts, relay, tmp_path
):
    """A profile closed mid-upload before uploads were recorded has nothing to go on from."""
    alice = await accounts.create("alice")
    await accounts.create("bob")
    sent = await alice.attachments.send_file("bob", write(tmp_path / "a.bin", 5000))
    with alice._store.transaction():
        alice._store.set_attachment(sent.message_id, FileState.UPLOADING, path="a.bin")
        alice._store.set_status(sent.message_id, MessageStatus.SENDING)
    alice = await accounts.reopen(alice)
    found = alice.attachments.get(sent.message_id)
    assert found.state is FileState.FAILED and found.detail == INTERRUPTED
    assert alice.messages("bob")[0].status is MessageStatus.FAILED


async def test_a_message_unsent_or_deleted_while_its_file_uploads_never_leaves(
    accounts, relay, tmp_path, monkeypatch
):
    """Unsent while the relay holds part of its blob: the upload that goes on leaves no message
    and the account releases the blob; deleted and the app closed: nothing resumes after it."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    uploads = Uploads(HANDLERS[wire.UploadChunk])
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, uploads)
    source = write(tmp_path / "draft.mov", SIZE)
    sending = asyncio.ensure_future(alice.attachments.send_file("bob", source))
    await eventually(uploads.committed.is_set, message="the relay committed four frames")
    (message,) = alice.messages("bob")
    try:
        alice.controls.unsend(message.message_id)
    finally:
        uploads.release.set()
    with pytest.raises(AttachmentFailed):
        await sending
    (blob_id,) = {blob for blob, _, _ in uploads.written}
    await eventually(
        lambda: not relay.relay.store.blob_readable_by(blob_id, "alice"),
        message="alice's account released the blob",
    )
    queued = alice._store.next_outgoing()  # (the unsend itself may still be on its way)
    assert queued is None or queued.message_id is None, "the message is not queued"

    uploads.written.clear()
    uploads.committed.clear()
    uploads.release.clear()
    sending = asyncio.ensure_future(alice.attachments.send_file("bob", source))
    await eventually(uploads.committed.is_set, message="the relay committed four frames")
    message = alice.messages("bob")[-1]  # (after the unsent one)
    try:
        alice.controls.delete_for_me([message.message_id])
        await accounts.stop(alice)
    finally:
        uploads.release.set()
    with pytest.raises(AttachmentFailed):  # stopped by the deletion, before the app closed
        await sending
    alice = await accounts.start(alice)
    await alice.wait_online()
    assert alice.attachments.uploads.progress == {}, "nothing resumed"
    assert alice._store.pending_uploads() == []
    assert len(uploads.written) == FRAMES_BEFORE_CLOSE
    assert bob.messages("alice") == []
