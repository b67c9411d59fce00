"""Cancelling an attachment's upload that went on after the app was closed, end to end: real
relay on 127.0.0.1 (both backends), real clients, their real profiles closed and opened again.

The user cancels it as they cancel a fresh one, while a chunk is in flight: nothing more is sent,
the message ends as a cancelled fresh upload's does (caption kept), the relay forgets the partial
blob, and the upload does not go on at the next start — also when the app closes before the relay
answered, and when the file vanished first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from client.core.events import MessageStatus
from client.core.store_attachments import FileState
from relay.handlers import HANDLERS
from shared import wire
from shared.attachment import blob_size
from tests.conftest import eventually
from tests.e2e.test_attachments import blob_held, write
from tests.e2e.test_upload_resume import SIZE, _closed_mid_upload

pytestmark = pytest.mark.backends()


@dataclass
class InFlight:
    """The relay's UploadChunk handler after the restart: notes each chunk it is sent and holds
    the ``hold_at``-th (not yet committed, not answered) until ``release`` is set."""

    real: object
    hold_at: int
    arrived: list[int] = field(default_factory=list)  # the offset of each chunk with data
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, session, frame):  # type: ignore[no-untyped-def]
        if frame.data:
            self.arrived.append(frame.offset)
            if len(self.arrived) == self.hold_at:
                self.holding.set()
                await self.release.wait()
        return await self.real(session, frame)  # type: ignore[operator]


def _ended_cancelled(client, message_id: bytes) -> tuple[object, ...]:  # type: ignore[no-untyped-def]
    """What the user sees of a cancelled upload's message, and what is left of its upload."""
    found = client.attachments.get(message_id)
    message = client._store.message(message_id)
    return (
        found.state,
        found.detail,
        found.progress,
        message.status,
        message.server_ts,
        client._store.pending_upload(message_id),
        client.conversations.retry(message_id),
    )


CANCELLED = (FileState.CANCELLED, "", None, MessageStatus.FAILED, None, None, False)


@pytest.mark.parametrize("file", ["kept", "deleted"])
async def test_a_resumed_upload_cancelled_mid_chunk_sends_nothing_more_and_stays_cancelled(
    accounts, relay, tmp_path, monkeypatch, file
):
    alice, bob, source, _, uploads, message_id, _, committed = await _closed_mid_upload(
        accounts, tmp_path, monkeypatch
    )
    (blob_id,) = {blob for blob, _, _ in uploads.written}
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=2)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    alice = await accounts.start(alice)
    try:
        assert [a.message_id for a in alice.attachments.uploading()] == [message_id]
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        shown: list[tuple[int, int]] = []
        following = asyncio.ensure_future(
            alice.attachments.follow_upload(message_id, lambda *p: shown.append(p))
        )
        # Followed as a fresh upload is: the progress from the relay's copy, at once.
        acknowledged = (committed + wire.BLOB_FRAME, blob_size(SIZE))
        await eventually(lambda: shown == [acknowledged], message="its progress is shown")
        if file == "deleted":
            source.unlink()  # the upload has not read past it yet
        sent = len(relay_chunks.arrived)
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
        assert _ended_cancelled(alice, message_id) == CANCELLED  # at once
    finally:
        relay_chunks.release.set()
    await eventually(lambda: not alice.attachments.uploading(), message="the upload stopped")
    await eventually(lambda: not blob_held(relay, blob_id), message="the relay forgot the blob")
    assert len(relay_chunks.arrived) == sent, "no chunk went after the cancel"
    assert alice.messages("bob")[0].body == "look", "the caption is kept"

    alice = await accounts.reopen(alice)
    await alice.wait_online()
    assert alice.attachments.uploading() == [], "it does not go on at the next start"
    assert _ended_cancelled(alice, message_id) == CANCELLED
    assert alice._store.pending_uploads() == [] and alice._store.abandoned_blobs() == []
    assert alice.messages("bob")[0].body == "look"
    assert alice._store.next_outgoing() is None
    assert bob.messages("alice") == []


async def test_a_cancelled_resumed_upload_ends_as_a_cancelled_fresh_one(
    accounts, relay, tmp_path, monkeypatch
):
    alice, _, _, _, _, resumed, _, _ = await _closed_mid_upload(accounts, tmp_path, monkeypatch)
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=1)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    alice = await accounts.start(alice)
    try:
        following = asyncio.ensure_future(alice.attachments.follow_upload(resumed))
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
    finally:
        relay_chunks.release.set()
    relay_chunks.hold_at, relay_chunks.release = len(relay_chunks.arrived) + 2, asyncio.Event()
    relay_chunks.holding.clear()
    sending = asyncio.ensure_future(
        alice.attachments.send_file("bob", write(tmp_path / "fresh.mov", SIZE), caption="new")
    )
    try:
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        fresh = alice.messages("bob")[-1].message_id
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
    finally:
        relay_chunks.release.set()
    assert _ended_cancelled(alice, resumed) == _ended_cancelled(alice, fresh) == CANCELLED
    await eventually(lambda: not alice.attachments.uploading(), message="both stopped")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="both blobs released")


@pytest.mark.parametrize("unanswered", ["chunk", "release", "release done"])
async def test_a_cancel_the_app_closed_on_before_the_relay_answered_is_finished_at_the_next_start(
    accounts, relay, tmp_path, monkeypatch, unanswered
):
    """The app closes right after the cancel, while the chunk in flight is still unanswered, or
    once the relay was asked to forget the blob but before it did (or before its answer came):
    at the next start the upload does not go on, and the relay is asked again (``no_blob``
    counts as done)."""
    alice, bob, _, _, uploads, message_id, _, _ = await _closed_mid_upload(
        accounts, tmp_path, monkeypatch
    )
    (blob_id,) = {blob for blob, _, _ in uploads.written}
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=1)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    release = HANDLERS[wire.ReleaseBlob]
    asked, answer = asyncio.Event(), asyncio.Event()

    async def lost(session, frame):  # type: ignore[no-untyped-def]
        reply = await release(session, frame) if unanswered == "release done" else None
        asked.set()
        await answer.wait()  # the app closes meanwhile: this answer never reaches it
        return reply or wire.Ok(rid=frame.rid)

    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, lost)
    alice = await accounts.start(alice)
    try:
        following = asyncio.ensure_future(alice.attachments.follow_upload(message_id))
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
        if unanswered != "chunk":  # (the relay answers a connection's requests in turn)
            relay_chunks.release.set()
            await eventually(asked.is_set, message="the relay is asked to forget the blob")
        await accounts.stop(alice)
    finally:
        relay_chunks.release.set()
        answer.set()
    sent = len(relay_chunks.arrived)
    assert blob_held(relay, blob_id) is (unanswered != "release done")

    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, release)
    alice = await accounts.start(alice)
    assert alice._store.abandoned_blobs(), "the release is still to be done"
    assert alice.attachments.uploading() == [], "it does not go on"
    assert _ended_cancelled(alice, message_id) == CANCELLED
    await eventually(lambda: not blob_held(relay, blob_id), message="released at the next start")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert len(relay_chunks.arrived) == sent == 1
    assert alice.messages("bob")[0].body == "look"
    assert bob.messages("alice") == []


async def test_cancelling_an_upload_whose_message_was_deleted_meanwhile_stops_it(
    accounts, relay, tmp_path, monkeypatch
):
    alice, _, _, _, _, message_id, _, _ = await _closed_mid_upload(accounts, tmp_path, monkeypatch)
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=1)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    alice = await accounts.start(alice)
    try:
        following = asyncio.ensure_future(alice.attachments.follow_upload(message_id))
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        alice.controls.delete_for_me([message_id])
        assert alice.attachments.uploading() == [], "not shown: its message is gone"
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
    finally:
        relay_chunks.release.set()
    await eventually(lambda: not alice.attachments.uploading(), message="the upload stopped")
    assert len(relay_chunks.arrived) == 1
    assert alice.messages("bob") == [] and alice._store.pending_uploads() == []


async def test_a_release_cut_by_a_dropped_connection_is_sent_again_once_it_is_back(
    accounts, relay, tmp_path, monkeypatch
):
    alice, _, _, _, uploads, message_id, _, _ = await _closed_mid_upload(
        accounts, tmp_path, monkeypatch
    )
    (blob_id,) = {blob for blob, _, _ in uploads.written}
    release = HANDLERS[wire.ReleaseBlob]
    asked, answer = asyncio.Event(), asyncio.Event()

    async def cut(session, frame):  # type: ignore[no-untyped-def]
        asked.set()
        await answer.wait()  # the relay goes down meanwhile: this request never takes effect
        return wire.Ok(rid=frame.rid)

    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, cut)
    relay_chunks = InFlight(HANDLERS[wire.UploadChunk], hold_at=1)
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, relay_chunks)
    alice = await accounts.start(alice)
    try:
        following = asyncio.ensure_future(alice.attachments.follow_upload(message_id))
        await eventually(relay_chunks.holding.is_set, message="a chunk is in flight")
        following.cancel()
        relay_chunks.release.set()
        await eventually(asked.is_set, message="the relay is asked to forget the blob")
        stopping = asyncio.ensure_future(relay.stop())
        await eventually(lambda: not alice.link.online.is_set(), message="the connection drops")
    finally:
        relay_chunks.release.set()
        answer.set()
    await stopping
    monkeypatch.setitem(HANDLERS, wire.ReleaseBlob, release)
    await relay.start()
    await eventually(lambda: not blob_held(relay, blob_id), message="released once it is back")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert _ended_cancelled(alice, message_id) == CANCELLED


async def test_an_upload_cancelled_while_the_relay_was_asked_for_its_blob_releases_that_blob(
    accounts, relay, tmp_path, monkeypatch
):
    """Closed before the relay gave a blob, the upload asks again after the restart; the user
    cancels before that answer: the blob the relay then gives is released, and nothing goes
    into it."""
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
        alice.attachments.send_file("bob", write(tmp_path / "notes.txt", SIZE), caption="hi")
    )
    try:
        await eventually(asked.is_set, message="the relay is asked for a blob")
        await accounts.stop(alice)
    finally:
        answer.set()
    with pytest.raises(asyncio.CancelledError):
        await sending
    asking = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "retrying"]
    assert asking == [], "the closed client asks the relay nothing more"
    asked.clear()
    answer.clear()
    alice = await accounts.start(alice)
    (message,) = alice.messages("bob")
    try:
        following = asyncio.ensure_future(alice.attachments.follow_upload(message.message_id))
        await eventually(asked.is_set, message="the relay is asked for a blob again")
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
    finally:
        answer.set()
    await eventually(lambda: len(given) == 2, message="the relay gave a blob")
    await eventually(lambda: not blob_held(relay, given[1]), message="the relay forgot it")
    await eventually(lambda: not alice._store.abandoned_blobs(), message="and forgotten here")
    assert relay_chunks.arrived == [], "nothing went into it"
    assert _ended_cancelled(alice, message.message_id) == CANCELLED
