"""An attachment's upload whose message goes while it runs, end to end: real relay on 127.0.0.1
(both backends), real clients, their real profiles closed and opened again.

Deleted for me, with its conversation, unsent or expired while a chunk is in flight, the upload
stops at once (its sender is told, before the relay answered that chunk), no chunk goes after it,
the relay forgets the partial blob and nothing resumes at the next start. The transaction that
removes the message notes the blob for release, so an app closed right after the removal, or a
message that expired while the app was closed, still has its blob released at the next start;
a release cut by a dropped connection goes again once the relay is back. A finished attachment
removed with it is released by its own path, as before.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from client.core import clock as clock_module
from client.core.attachment_upload import REMOVED, AttachmentFailed
from client.core.events import MessageStatus
from relay.handlers import HANDLERS
from shared import wire
from shared.attachment import decode_pointer
from tests.conftest import eventually
from tests.e2e.test_attachments import blob_held, write
from tests.e2e.test_upload_cancel import InFlight
from tests.e2e.test_upload_resume import FRAMES_BEFORE_CLOSE, SIZE, Uploads

pytestmark = pytest.mark.backends()

TIMER = 300  # seconds: the conversation's disappearing-messages timer where a test needs one


async def _mid_upload(accounts, tmp_path, monkeypatch, *, timer: bool = False):  # type: ignore[no-untyped-def]
    """Alice sends Bob a file; the relay holds its second chunk (neither committed nor answered).
    Returns her client, Bob's, the sending task, the message id, the relay's chunk handler and
    the partial blob as her profile notes it (blob id, capability)."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    if timer:
        alice.controls.set_timer("bob", TIMER)
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=2)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    sending = asyncio.ensure_future(
        alice.attachments.send_file("bob", write(tmp_path / "holiday.mov", SIZE), caption="look")
    )
    await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
    (message_id,) = alice.attachments.uploads.running()
    upload = alice._store.pending_upload(message_id)
    assert upload.blob_id is not None
    return alice, bob, sending, message_id, relay_chunks, (upload.blob_id, upload.capability)


def _remove(alice, message_id: bytes, how: str) -> None:  # type: ignore[no-untyped-def]
    if how == "deleted for me":
        alice.controls.delete_for_me([message_id])
    elif how == "conversation deleted":
        alice.controls.delete_conversation("bob")
    elif how == "unsent":
        alice.controls.unsend(message_id)
    else:  # expired: the relay's clock as this device reads it passes the message's expiry
        alice.context.clock.offset_ms += (TIMER + 1) * 1000
        alice.control_sync.wake.set()


@pytest.mark.parametrize("how", ["deleted for me", "conversation deleted", "unsent", "expired"])
async def test_a_message_that_goes_mid_chunk_stops_its_upload_and_the_relay_forgets_the_blob(
    accounts, relay, tmp_path, monkeypatch, how
):
    alice, bob, sending, message_id, relay_chunks, blob = await _mid_upload(
        accounts, tmp_path, monkeypatch, timer=how == "expired"
    )
    blob_id = blob[0]
    try:
        sent = len(relay_chunks.arrived)
        _remove(alice, message_id, how)
        await eventually(
            lambda: alice._store.pending_upload(message_id) is None, message="the message went"
        )
        # In the transaction that removed the message: nothing to resume, the blob to release.
        assert alice._store.abandoned_blobs() == [blob]
        async with asyncio.timeout(10):  # the relay still holds the chunk in flight
            with pytest.raises(AttachmentFailed) as stopped:
                await sending
        assert stopped.value.reason == REMOVED
        assert alice.attachments.uploads.running() == [] and alice.attachments.uploading() == []
        assert alice.attachments.uploads.progress == {}
        assert blob_held(relay, blob_id), "(the relay answers a connection's requests in turn)"
    finally:
        relay_chunks.release.set()
    await eventually(lambda: not blob_held(relay, blob_id), message="the relay forgot the blob")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert len(relay_chunks.arrived) == sent, "no chunk went after the message"
    kept = [m for m in alice.messages("bob") if m.message_id == message_id]
    if how == "unsent":  # its place stays, as an unsent message's does
        assert [(m.status, m.body) for m in kept] == [(MessageStatus.UNSENT, "")]
    else:
        assert kept == []

    alice = await accounts.reopen(alice)
    await alice.wait_online()
    assert alice.attachments.uploads.running() == [], "nothing resumes at the next start"
    assert alice._store.pending_uploads() == [] and alice._store.abandoned_blobs() == []
    assert len(relay_chunks.arrived) == sent
    assert all(m.message_id != message_id for m in bob.messages("alice"))


@pytest.mark.parametrize("unanswered", ["chunk", "release"])
async def test_an_app_closed_right_after_the_message_went_releases_the_blob_at_the_next_start(
    accounts, relay, tmp_path, monkeypatch, unanswered
):
    """Deleted while a chunk is in flight, then the app closes before the relay answered that
    chunk, or once the relay was asked to forget the blob but before it did."""
    alice, _, sending, message_id, relay_chunks, blob = await _mid_upload(
        accounts, tmp_path, monkeypatch
    )
    blob_id = blob[0]
    release = HANDLERS[wire.ReleaseBlob]
    asked, answer = asyncio.Event(), asyncio.Event()

    async def lost(session, frame):  # type: ignore[no-untyped-def]
        asked.set()
        await answer.wait()  # the app closes meanwhile: this request never takes effect
        return wire.Ok(rid=frame.rid)

    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, lost)
    try:
        alice.controls.delete_for_me([message_id])
        with pytest.raises(AttachmentFailed):
            await sending
        if unanswered == "release":
            relay_chunks.release.set()
            await eventually(asked.is_set, message="the relay is asked to forget the blob")
        await accounts.stop(alice)
    finally:
        relay_chunks.release.set()
        answer.set()
    sent = len(relay_chunks.arrived)
    assert blob_held(relay, blob_id)

    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, release)
    alice = await accounts.start(alice)
    assert alice._store.abandoned_blobs() == [blob], "the release is still to be done"
    assert alice.attachments.uploads.running() == [], "nothing resumes"
    await eventually(lambda: not blob_held(relay, blob_id), message="released at the next start")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert len(relay_chunks.arrived) == sent


async def test_a_message_that_expired_while_the_app_was_closed_releases_its_partial_blob(
    accounts, relay, tmp_path, monkeypatch
):
    """The app closes mid-upload; the message expires before it is opened again: it is removed
    before anything is shown, nothing of its upload goes on, and the relay forgets the blob."""
    alice = await accounts.create("alice")
    await accounts.create("bob")
    alice.controls.set_timer("bob", TIMER)
    uploads = Uploads(HANDLERS[wire.UploadChunk])
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, uploads)
    sending = asyncio.ensure_future(
        alice.attachments.send_file("bob", write(tmp_path / "holiday.mov", SIZE))
    )
    try:
        await eventually(uploads.committed.is_set, message="the relay committed four frames")
        (message_id,) = alice.attachments.uploads.running()
        await accounts.stop(alice)
    finally:
        uploads.release.set()
    with pytest.raises(asyncio.CancelledError):
        await sending
    uploads.hold = False
    (blob_id,) = {blob for blob, _, _ in uploads.written}
    assert blob_held(relay, blob_id)

    real = clock_module.RelayClock.local_ms
    monkeypatch.setattr(
        clock_module.RelayClock, "local_ms", lambda self: real(self) + (TIMER + 1) * 1000
    )
    alice = await accounts.start(alice)
    assert all(m.message_id != message_id for m in alice.messages("bob")), "expired on opening"
    assert alice.attachments.uploads.running() == [] and alice._store.pending_uploads() == []
    await eventually(lambda: not blob_held(relay, blob_id), message="the relay forgot the blob")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert len(uploads.written) == FRAMES_BEFORE_CLOSE, "nothing more was sent"


async def test_a_release_cut_by_a_dropped_connection_after_a_deletion_goes_again(
    accounts, relay, tmp_path, monkeypatch
):
    alice, _, sending, message_id, relay_chunks, blob = await _mid_upload(
        accounts, tmp_path, monkeypatch
    )
    blob_id = blob[0]
    release = HANDLERS[wire.ReleaseBlob]
    asked, answer = asyncio.Event(), asyncio.Event()

    async def cut(session, frame):  # type: ignore[no-untyped-def]
        asked.set()
        await answer.wait()  # the relay goes down meanwhile: this request never takes effect
        return wire.Ok(rid=frame.rid)

    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, cut)
    try:
        alice.controls.delete_for_me([message_id])
        with pytest.raises(AttachmentFailed):
            await sending
        relay_chunks.release.set()
        await eventually(asked.is_set, message="the relay is asked to forget the blob")
        stopping = asyncio.ensure_future(relay.stop())
        await eventually(lambda: not alice.link.online.is_set(), message="the connection drops")
    finally:
        relay_chunks.release.set()
        answer.set()
    await stopping
    assert alice._store.abandoned_blobs() == [blob], "still to be released"
    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, release)
    await relay.start()
    await eventually(lambda: not blob_held(relay, blob_id), message="released once it is back")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert alice.attachments.uploads.running() == []


async def test_a_finished_attachment_and_an_unfinished_one_deleted_together_go_their_own_ways(
    accounts, relay, tmp_path, monkeypatch
):
    """One conversation deletion removes a sent attachment and one still uploading: the sent
    one's blob keeps Bob's reference (Alice's alone goes, through its pointer), the partial one
    is noted and deleted on the relay; neither is taken for the other."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    source = tmp_path / "sent.jpg"
    source.write_bytes(os.urandom(200_000))
    finished = await alice.attachments.send_file("bob", source, caption="sent")
    await eventually(
        lambda: bob.attachments.get(finished.message_id) is not None, message="it reached bob"
    )
    sent_blob = decode_pointer(alice._store.attachment(finished.message_id).pointer).blob_id
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=2)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    sending = asyncio.ensure_future(
        alice.attachments.send_file("bob", write(tmp_path / "holiday.mov", SIZE))
    )
    try:
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        (uploading,) = alice.attachments.uploads.running()
        upload = alice._store.pending_upload(uploading)
        alice.controls.delete_conversation("bob")
        assert alice.messages("bob") == []
        assert alice._store.abandoned_blobs() == [(upload.blob_id, upload.capability)]
        assert {r.message_id: bool(r.pointer) for r in alice._store.releases(-1)} == {
            finished.message_id: True,
            uploading: False,  # (no pointer: its own path releases it)
        }
        with pytest.raises(AttachmentFailed):
            await sending
    finally:
        relay_chunks.release.set()
    await eventually(lambda: not blob_held(relay, upload.blob_id), message="the partial went")
    await eventually(
        lambda: not relay.relay.store.blob_readable_by(sent_blob, "alice"),
        message="alice's reference to the sent one went",
    )
    await eventually(
        lambda: not alice._store.abandoned_blobs() and not alice._store.releases(-1),
        message="both done here",
    )
    assert relay.relay.store.blob_readable_by(sent_blob, "bob")
    assert (await bob.attachments.download(finished.message_id)).read_bytes() == (
        source.read_bytes()
    )


async def test_a_message_changed_in_place_while_its_file_uploads_goes_on(
    accounts, relay, tmp_path, monkeypatch
):
    """A reaction names the uploading message without removing it: the upload is not stopped."""
    alice, bob, sending, message_id, relay_chunks, _ = await _mid_upload(
        accounts, tmp_path, monkeypatch
    )
    try:
        alice.controls.react(message_id, "👍")
        assert alice.attachments.uploads.running() == [message_id]
    finally:
        relay_chunks.release.set()
    message = await sending
    assert message.message_id == message_id
    await eventually(
        lambda: bob.attachments.get(message_id) is not None, message="the file reached bob"
    )
    assert alice._store.abandoned_blobs() == []


@pytest.mark.parametrize("cleared", ["before the upload began", "while it ran"])
async def test_a_conversation_deleted_on_another_device_stops_the_uploads_begun_before_it(
    accounts, relay, tmp_path, monkeypatch, cleared
):
    """Alice's laptop deletes the conversation; her phone applies it from the relay while its
    upload runs. Made after the upload began, the deletion stops it and the blob is released; made
    before it (its time is the laptop's: say the laptop's clock ran a minute behind), the upload is
    newer than the deletion and goes on."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    laptop = await accounts.add_device(alice, "Laptop")
    older = await alice.send_text("bob", "before the deletion")
    await eventually(
        lambda: any(m.message_id == older.message_id for m in laptop.messages("bob")),
        message="the laptop has the conversation",
    )
    if cleared == "before the upload began":
        laptop.context.clock.offset_ms -= 60_000
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=2)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    sending = asyncio.ensure_future(
        alice.attachments.send_file("bob", write(tmp_path / "holiday.mov", SIZE), caption="look")
    )
    try:
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        (message_id,) = alice.attachments.uploads.running()
        upload = alice._store.pending_upload(message_id)
        laptop.controls.delete_conversation("bob")
        await eventually(
            lambda: all(m.message_id != older.message_id for m in alice.messages("bob")),
            message="the phone applied the deletion",
        )
        if cleared == "while it ran":
            with pytest.raises(AttachmentFailed):
                await sending
            assert alice.messages("bob") == []
            assert alice._store.abandoned_blobs() == [(upload.blob_id, upload.capability)]
        else:
            assert alice.attachments.uploads.running() == [message_id]
    finally:
        relay_chunks.release.set()
    if cleared == "while it ran":
        await eventually(lambda: not blob_held(relay, upload.blob_id), message="blob forgotten")
        await eventually(lambda: not alice._store.abandoned_blobs(), message="and noted done")
    else:
        assert (await sending).message_id == message_id
        await eventually(
            lambda: bob.attachments.get(message_id) is not None, message="the file reached bob"
        )
        assert [m.message_id for m in alice.messages("bob")] == [message_id]


async def test_a_message_deleted_while_the_relay_was_asked_for_its_blob_releases_that_blob(
    accounts, relay, tmp_path, monkeypatch
):
    """Deleted before the relay gave its upload a blob: the upload stops, the blob the relay then
    gives is released, and nothing goes into it."""
    alice = await accounts.create("alice")
    await accounts.create("bob")
    start = HANDLERS[wire.StartUpload]
    asked, answer = asyncio.Event(), asyncio.Event()
    given: list[bytes] = []

    async def slow(session, frame):  # type: ignore[no-untyped-def]
        asked.set()
        await answer.wait()
        reply = await start(session, frame)
        given.append(reply.blob_id)
        return reply

    monkeypatch.setitem(HANDLERS, wire.StartUpload, slow)
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=0)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    sending = asyncio.ensure_future(
        alice.attachments.send_file("bob", write(tmp_path / "notes.txt", SIZE))
    )
    try:
        await eventually(asked.is_set, message="the relay is asked for a blob")
        (message_id,) = alice.attachments.uploads.running()
        alice.controls.delete_for_me([message_id])
        assert alice._store.pending_uploads() == [] and alice._store.abandoned_blobs() == []
        with pytest.raises(AttachmentFailed):
            await sending
    finally:
        answer.set()
    await eventually(lambda: len(given) == 1, message="the relay gave a blob")
    await eventually(lambda: not blob_held(relay, given[0]), message="the relay forgot it")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert relay_chunks.arrived == [], "nothing went into it"


async def test_a_text_on_its_way_when_the_conversation_is_deleted_stays_as_it_arrives(
    accounts, relay, monkeypatch
):
    """Only an upload is taken by a deletion of its conversation before it has a relay time: a
    text already queued leaves anyway, so it stays here as it arrives at Bob's."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    send = HANDLERS[wire.Send]
    asked, answer = asyncio.Event(), asyncio.Event()

    async def slow(session, frame):  # type: ignore[no-untyped-def]
        asked.set()
        await answer.wait()
        return await send(session, frame)

    monkeypatch.setitem(HANDLERS, wire.Send, slow)
    try:
        text = await alice.send_text("bob", "on its way")
        await eventually(asked.is_set, message="the relay is asked to take it")
        alice.controls.delete_conversation("bob")
        assert [m.message_id for m in alice.messages("bob")] == [text.message_id]
    finally:
        answer.set()
    await eventually(lambda: [m.body for m in bob.messages("alice")] == ["on its way"])
    assert [m.message_id for m in alice.messages("bob")] == [text.message_id]
