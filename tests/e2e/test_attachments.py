"""Attachments end to end: real relay on 127.0.0.1, real clients. Files and images reach every
device bit-identical (one offline while they are sent), a restored device gets the thumbnails at
once and the files on demand, the relay's store holds no plaintext, uploads and downloads resume
after a dropped connection, and a hostile relay (flipped, truncated, swapped, replayed blobs) or
a hostile sender (wrong digest, oversized size) is caught and shown as such.

The 100 MiB file goes to four devices in about 20 s on two cores; Python's allocations
(client and relay, both in this process) stay under 8 MiB while it streams (tracemalloc).
``tests/benchmarks/bench_attachments.py`` measures the throughput and the resident-set growth.

On SQLite with one relay node and on PostgreSQL with two (blobs as rows: an upload through one
node resumes and is fetched through the other), but for the tests that edit the SQLite store's
blob files and the 100 MiB one."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from client.core.attachments import COULD_NOT_VERIFY, AttachmentFailed
from client.core.events import MessageStatus, StoredMessage
from client.core.store_attachments import FileState
from relay.handlers import HANDLERS
from relay.limits import Limits
from relay.store import RelayStore
from shared import wire
from shared.attachment import AttachmentPointer, decode_pointer
from shared.envelope import AttachmentMessage, encode_payload, new_message_id
from tests.conftest import eventually

BIG = 100 * 1024 * 1024
IMAGES = 50

pytestmark = pytest.mark.backends()


def write(path: Path, size: int) -> Path:
    with path.open("wb") as file:
        for _ in range(size // (1 << 20)):
            file.write(os.urandom(1 << 20))
        file.write(os.urandom(size % (1 << 20)))
    return path


def digest(path: Path) -> bytes:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").digest()


def attachment_of(client, sender_user: str, peer: str, name: str):  # type: ignore[no-untyped-def]
    for message in client.messages(peer, limit=500):
        found = client.attachments.get(message.message_id)
        if found is not None and found.name.endswith(name) and message.sender_user == sender_user:
            return message, found
    return None, None


async def send(client, peer: str, path: Path, **kwargs):  # type: ignore[no-untyped-def]
    message = await client.attachments.send_file(peer, path, **kwargs)
    await eventually(
        lambda: client._store.message(message.message_id).server_ts is not None,
        message="the relay accepted the attachment's message",
    )
    return message


def thumb(i: int) -> bytes:
    """Large thumbnails (20 KB): fifty of them fill more than one frame of every kind — the
    offline device's deliveries, the mailbox's saves and the restored device's pages."""
    return b"\xff\xd8thumbnail-" + i.to_bytes(4, "big") + os.urandom(20_000)


@pytest.mark.backends("sqlite")  # 100 MiB: the cross-node test below runs a smaller one
async def test_a_file_and_fifty_images_reach_every_device_and_a_restored_one(
    accounts, relay, tmp_path
):
    alice = await accounts.create("alice")
    alice_laptop = await accounts.add_device(alice, "Laptop")
    bob = await accounts.create("bob")
    bob_laptop = await accounts.add_device(bob, "Laptop")
    code = await alice.setup_recovery()
    await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob_laptop.messages("alice")) == 1, message="bob's laptop")
    await accounts.stop(bob_laptop)  # offline while everything is sent

    source = write(tmp_path / "big.bin", BIG)
    images = [write(tmp_path / f"photo-{i}.jpg", 20_000 + i) for i in range(IMAGES)]
    progress: list[tuple[int, int]] = []
    tracemalloc.start()
    await send(
        alice, "bob", source, caption="the file", progress=lambda d, t: progress.append((d, t))
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"uploading 100 MiB held {peak} bytes at once"
    assert progress[-1][0] == progress[-1][1] and len(progress) > 10
    for i, image in enumerate(images):
        await send(bob, "alice", image, content_type="image/jpeg", thumbnail=thumb(i))

    bob_laptop = await accounts.start(bob_laptop)
    devices = {"bob": bob, "bob's laptop": bob_laptop, "alice's laptop": alice_laptop}
    for label, device in devices.items():
        peer = "alice" if device.username == "bob" else "bob"
        await eventually(
            lambda d=device, p=peer: (
                attachment_of(d, "alice", p, "big.bin")[1] is not None
                and sum(1 for m in d.messages(p, limit=500) if d.attachments.get(m.message_id))
                == 51
            ),
            timeout=60,
            message=f"{label} has every attachment",
        )
    for label, device in devices.items():
        peer = "alice" if device.username == "bob" else "bob"
        message, found = attachment_of(device, "alice", peer, "big.bin")
        assert found.state is FileState.REMOTE and message.body == "the file"
        tracemalloc.start()
        path = await device.attachments.download(message.message_id)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 8 * 1024 * 1024, f"{label} held {peak} bytes downloading 100 MiB"
        assert digest(path) == digest(source), label
        assert path.parent == device.profile_dir / "attachments"
        for i in (0, 17, IMAGES - 1):
            image_message, image = attachment_of(device, "bob", peer, f"photo-{i}.jpg")
            if image_message is None:  # bob's own devices: the image is his
                continue
            assert image.thumbnail == thumb_of(bob, i)
            assert digest(await device.attachments.download(image_message.message_id)) == digest(
                images[i]
            )
    for i, image in enumerate(images):
        message, found = attachment_of(alice, "bob", "bob", f"photo-{i}.jpg")
        assert found.is_image and found.thumbnail == thumb_of(bob, i)
        assert digest(await alice.attachments.download(message.message_id)) == digest(image)

    # The relay's store holds ciphertext only: no 64-byte window of any file is in it.
    await alice.wait_saved()
    await bob.wait_saved()
    stored = b"".join(p.read_bytes() for p in relay.data_dir.rglob("*") if p.is_file())
    for original in (source, *images[:5]):
        data = original.read_bytes()
        for offset in range(0, len(data) - 64, max(1, len(data) // 50)):
            assert data[offset : offset + 64] not in stored, original.name

    # A device restored afterwards: thumbnails at once, files on demand.
    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    await eventually(
        lambda: attachment_of(restored, "bob", "bob", f"photo-{IMAGES - 1}.jpg")[1] is not None,
        message="the restored device lists the images",
    )
    for i in range(IMAGES):
        _, found = attachment_of(restored, "bob", "bob", f"photo-{i}.jpg")
        assert found.state is FileState.REMOTE and found.thumbnail == thumb_of(bob, i)
    message, found = attachment_of(restored, "alice", "bob", "big.bin")
    assert found.state is FileState.REMOTE
    assert digest(await restored.attachments.download(message.message_id)) == digest(source)


def thumb_of(bob, i: int) -> bytes:  # type: ignore[no-untyped-def]
    """The thumbnail bob sent with image ``i``, read from his own record of it."""
    _, found = attachment_of(bob, "bob", "alice", f"photo-{i}.jpg")
    return found.thumbnail


async def _sent_pair(accounts, tmp_path, size: int = 300_000):  # type: ignore[no-untyped-def]
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    source = write(tmp_path / "report.pdf", size)
    sent = await send(alice, "bob", source, content_type="application/pdf")
    await eventually(lambda: bob.attachments.get(sent.message_id) is not None, message="arrives")
    return alice, bob, source, sent.message_id


def _blob_id(bob, message_id: bytes) -> bytes:  # type: ignore[no-untyped-def]
    return decode_pointer(bob._store.attachment(message_id).pointer).blob_id


def _blob_file(relay, bob, message_id: bytes) -> Path:  # type: ignore[no-untyped-def]
    return relay.relay.store.blob_dir / _blob_id(bob, message_id).hex()


def stored_chunks(relay) -> bytes:  # type: ignore[no-untyped-def]
    """Every byte of every blob a PostgreSQL relay store holds (its ``blob_chunks`` rows)."""
    rows = relay.relay.store._committed_rows("SELECT data FROM blob_chunks ORDER BY start")
    return b"".join(row[0] for row in rows)


def blob_held(relay, blob_id: bytes) -> bool:  # type: ignore[no-untyped-def]
    """Whether the store still holds the blob's record or any of its bytes."""
    store = relay.relay.store
    if isinstance(store, RelayStore):
        return store.blob(blob_id) is not None or (store.blob_dir / blob_id.hex()).exists()
    rows = store._committed_rows(
        "SELECT 1 FROM blobs WHERE blob_id = $1 UNION ALL"
        " SELECT 1 FROM blob_chunks WHERE blob_id = $1",
        blob_id,
    )
    return bool(rows)


async def _refused_as_tampered(bob, message_id: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AttachmentFailed) as failed:
        await bob.attachments.download(message_id)
    assert failed.value.state is FileState.TAMPERED and failed.value.reason == COULD_NOT_VERIFY
    found = bob.attachments.get(message_id)
    assert found.state is FileState.TAMPERED and found.path is None
    assert not any((bob.profile_dir / "attachments").iterdir()), "nothing of it is kept"


@pytest.mark.backends("sqlite")  # it edits the blob's file
async def test_a_flipped_bit_in_the_stored_blob_is_caught(accounts, relay, tmp_path):
    _, bob, _, message_id = await _sent_pair(accounts, tmp_path)
    path = _blob_file(relay, bob, message_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    await _refused_as_tampered(bob, message_id)


@pytest.mark.backends("sqlite")  # it edits the blob's file
async def test_a_truncated_blob_is_caught(accounts, relay, tmp_path):
    _, bob, _, message_id = await _sent_pair(accounts, tmp_path)
    path = _blob_file(relay, bob, message_id)
    path.write_bytes(path.read_bytes()[: 65536 + 16])  # one whole chunk kept
    await _refused_as_tampered(bob, message_id)


async def test_a_swapped_blob_is_caught(accounts, relay, tmp_path, monkeypatch):
    """The relay answers with another attachment's blob of the same size (and the same
    capability check passes: it is the relay)."""
    alice, bob, source, message_id = await _sent_pair(accounts, tmp_path)
    other = await send(alice, "bob", write(tmp_path / "other.pdf", source.stat().st_size))
    await eventually(lambda: bob.attachments.get(other.message_id) is not None, message="other")
    other_blob = _blob_id(bob, other.message_id)
    fetch = HANDLERS[wire.FetchBlob]

    async def swapped(session, frame):  # type: ignore[no-untyped-def]
        reply = await fetch(session, frame)
        data = session.store.read_blob(other_blob, frame.offset, frame.length)
        return msgspec.structs.replace(reply, data=data)

    monkeypatch.setitem(HANDLERS, wire.FetchBlob, swapped)
    await _refused_as_tampered(bob, message_id)


async def test_a_replayed_chunk_is_caught(accounts, relay, tmp_path, monkeypatch):
    """The relay answers every request with the blob's first chunk, correctly labelled."""
    _, bob, _, message_id = await _sent_pair(accounts, tmp_path)
    fetch = HANDLERS[wire.FetchBlob]

    async def replayed(session, frame):  # type: ignore[no-untyped-def]
        first = await fetch(session, msgspec.structs.replace(frame, offset=0))
        return msgspec.structs.replace(
            first, offset=frame.offset, data=first.data[: len((await fetch(session, frame)).data)]
        )

    monkeypatch.setitem(HANDLERS, wire.FetchBlob, replayed)
    await _refused_as_tampered(bob, message_id)


async def _forged(alice, peer: str, pointer: AttachmentPointer) -> bytes:  # type: ignore[no-untyped-def]
    """A hostile sender: a message whose pointer the sender chose freely."""
    message_id = new_message_id()
    store, ctx = alice._store, alice.context
    with store.transaction():
        origin = ctx.origin()
        store.insert_message(
            StoredMessage(
                message_id=message_id,
                thread=peer,
                sender_user=alice.username,
                sender_device=alice.device_id,
                sent_at=1,
                server_ts=None,
                body="",
                status=MessageStatus.SENDING,
            )
        )
        payload = AttachmentMessage(
            origin=origin, message_id=message_id, peer=peer, sent_at=1, body="", attachment=pointer
        )
        store.record_sender_order(message_id, peer, alice.username, alice.device_id, origin.counter)
        store.enqueue([peer, alice.username], encode_payload(payload), message_id)
    ctx.outbox_wake.set()
    return message_id


async def test_a_wrong_digest_or_an_oversized_size_from_the_sender_gives_a_clear_state(
    accounts, relay, tmp_path
):
    alice, bob, _, message_id = await _sent_pair(accounts, tmp_path)
    genuine = decode_pointer(alice._store.attachment(message_id).pointer)
    wrong_digest = await _forged(alice, "bob", msgspec.structs.replace(genuine, digest=bytes(32)))
    oversized = await _forged(
        alice, "bob", msgspec.structs.replace(genuine, size=200 * 1024 * 1024)
    )
    await eventually(lambda: bob.attachments.get(oversized) is not None, message="forged ones")
    await _refused_as_tampered(bob, wrong_digest)
    found = bob.attachments.get(oversized)
    assert found.state is FileState.INVALID and "more than the 100 MB" in found.detail
    with pytest.raises(AttachmentFailed, match="more than the 100 MB"):
        await bob.attachments.download(oversized)
    # The genuine one still opens: one bad message stops nothing else.
    assert (await bob.attachments.download(message_id)).exists()


async def test_the_capability_alone_fetches_nothing_for_another_account(accounts, relay, tmp_path):
    _, bob, _, message_id = await _sent_pair(accounts, tmp_path)
    mallory = await accounts.create("mallory")
    stolen = bob._store.attachment(message_id)  # mallory somehow learnt the whole pointer
    with mallory._store.transaction():
        mallory._store.put_attachment(stolen._replace(state=FileState.REMOTE, path=None))
    with pytest.raises(AttachmentFailed) as failed:
        await mallory.attachments.download(message_id)  # the capability alone is not enough
    assert failed.value.state is FileState.GONE
    assert (await bob.attachments.download(message_id)).exists()


async def test_an_upload_and_a_download_resume_after_a_dropped_connection(
    accounts, relay, tmp_path, monkeypatch
):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    source = write(tmp_path / "movie.mp4", 3 * wire.BLOB_FRAME * 4 + 123)
    written: list[int] = []
    upload = HANDLERS[wire.UploadChunk]

    async def dropping(session, frame):  # type: ignore[no-untyped-def]
        reply = await upload(session, frame)
        written.append(len(frame.data))
        if len(written) == 4:  # the relay committed this chunk, the answer is lost
            session.relay.disconnect(session.device_id, 1011, "dropped")
        return reply

    monkeypatch.setitem(HANDLERS, wire.UploadChunk, dropping)
    sent = await send(alice, "bob", source)
    pointer = decode_pointer(alice._store.attachment(sent.message_id).pointer)
    assert sum(written) == pointer.blob_size  # nothing was uploaded twice
    monkeypatch.setitem(HANDLERS, wire.UploadChunk, upload)

    fetched: list[int] = []
    fetch = HANDLERS[wire.FetchBlob]

    async def dropping_fetch(session, frame):  # type: ignore[no-untyped-def]
        fetched.append(frame.offset)
        if len(fetched) == 6:
            session.relay.disconnect(session.device_id, 1011, "dropped")
        return await fetch(session, frame)

    monkeypatch.setitem(HANDLERS, wire.FetchBlob, dropping_fetch)
    await eventually(lambda: bob.attachments.get(sent.message_id) is not None, message="arrives")
    path = await bob.attachments.download(sent.message_id)
    assert digest(path) == digest(source)
    assert fetched.count(0) == 1, "the download resumed, it did not start again"


async def test_the_quota_is_shown_and_the_message_never_leaves(tmp_path):
    from tests.conftest import Accounts, RunningRelay

    relay = RunningRelay(tmp_path / "relay", Limits(blob_bytes=100_000))
    await relay.start()
    made = Accounts(relay, tmp_path / "profiles")
    try:
        alice = await made.create("alice")
        await made.create("bob")
        with pytest.raises(AttachmentFailed, match="all the space the relay allows"):
            await alice.attachments.send_file("bob", write(tmp_path / "big", 200_000))
        (message,) = alice.messages("bob")
        assert message.status is MessageStatus.FAILED
        found = alice.attachments.get(message.message_id)
        assert found.state is FileState.FAILED and "space" in found.detail
        assert alice._store.next_outgoing() is None, "nothing waits to be sent"
    finally:
        await made.close()
        await relay.stop()


async def test_a_file_name_from_the_sender_stays_in_the_profile(accounts, relay, tmp_path):
    alice, bob, _, message_id = await _sent_pair(accounts, tmp_path)
    genuine = decode_pointer(alice._store.attachment(message_id).pointer)
    forged = await _forged(
        alice, "bob", msgspec.structs.replace(genuine, name="../../../../outside/.bashrc")
    )
    await eventually(lambda: bob.attachments.get(forged) is not None, message="arrives")
    path = await bob.attachments.download(forged)
    assert path.resolve().parent == (bob.profile_dir / "attachments").resolve()
    assert "/" not in path.name and path.name.endswith("outside_.bashrc")
    assert not (tmp_path / "outside").exists()


async def test_a_cancelled_download_resumes_where_it_stopped(
    accounts, relay, tmp_path, monkeypatch
):
    _, bob, source, message_id = await _sent_pair(accounts, tmp_path, size=3 * 1024 * 1024)
    gate = asyncio.Event()
    asked: list[int] = []
    fetch = HANDLERS[wire.FetchBlob]

    async def slow(session, frame):  # type: ignore[no-untyped-def]
        asked.append(frame.offset)
        if frame.offset >= 4 * wire.BLOB_FRAME:
            await gate.wait()  # a slow relay: the user cancels meanwhile
        return await fetch(session, frame)

    monkeypatch.setitem(HANDLERS, wire.FetchBlob, slow)
    task = asyncio.ensure_future(bob.attachments.download(message_id))
    await eventually(lambda: len(asked) > 4, message="the download is under way")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bob.attachments.get(message_id).state is FileState.REMOTE
    gate.set()
    asked.clear()
    path = await bob.attachments.download(message_id)
    assert digest(path) == digest(source)
    assert min(asked) == 4 * wire.BLOB_FRAME, "the second download went on from what it had"


async def test_a_blob_goes_once_every_account_released_it(accounts, relay, tmp_path):
    alice, bob, _, message_id = await _sent_pair(accounts, tmp_path)
    blob_id = _blob_id(bob, message_id)
    path = await bob.attachments.download(message_id)
    await bob.attachments.release(message_id)
    assert not path.exists() and bob.attachments.get(message_id).state is FileState.GONE
    assert blob_held(relay, blob_id)  # alice's account still needs it
    await alice.attachments.release(message_id)
    assert not blob_held(relay, blob_id)


@pytest.mark.backends("postgres")
async def test_an_attachment_crosses_nodes_and_resumes_on_the_other_node(
    accounts, relay, tmp_path, monkeypatch
):
    """Alice's devices use node 1, bob's node 2. Alice's upload is cut after four chunks and
    her device reconnects to node 2 (as a load balancer may send it), where the upload goes on
    from what node 1 committed; bob's download is cut and goes on through node 1. The file
    arrives bit-identical, nothing is sent twice, and the database holds ciphertext only."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    node1, node2 = relay.relays
    url1, url2 = (f"ws://127.0.0.1:{port}" for port in relay.ports)
    assert alice.link.url == url1 and bob.link.url == url2
    source = write(tmp_path / "movie.mp4", 3 * wire.BLOB_FRAME * 4 + 123)
    uploaded: list[tuple[object, int]] = []  # (node, bytes) per chunk written
    upload = HANDLERS[wire.UploadChunk]

    async def moving_upload(session, frame):  # type: ignore[no-untyped-def]
        reply = await upload(session, frame)
        uploaded.append((session.relay, len(frame.data)))
        if len(uploaded) == 4:  # committed on node 1; the answer is lost, the device moves
            alice.link.url = url2
            session.relay.disconnect(session.device_id, 1011, "dropped")
        return reply

    monkeypatch.setitem(HANDLERS, wire.UploadChunk, moving_upload)
    sent = await send(alice, "bob", source)
    pointer = decode_pointer(alice._store.attachment(sent.message_id).pointer)
    assert sum(size for _, size in uploaded) == pointer.blob_size  # nothing uploaded twice
    assert {node for node, _ in uploaded[:4]} == {node1}
    assert {node for node, _ in uploaded[4:]} == {node2}

    fetched: list[tuple[object, int]] = []
    fetch = HANDLERS[wire.FetchBlob]

    async def moving_fetch(session, frame):  # type: ignore[no-untyped-def]
        fetched.append((session.relay, frame.offset))
        if len(fetched) == 6:
            bob.link.url = url1
            session.relay.disconnect(session.device_id, 1011, "dropped")
        return await fetch(session, frame)

    monkeypatch.setitem(HANDLERS, wire.FetchBlob, moving_fetch)
    await eventually(lambda: bob.attachments.get(sent.message_id) is not None, message="arrives")
    path = await bob.attachments.download(sent.message_id)
    assert digest(path) == digest(source)
    assert [offset for _, offset in fetched].count(0) == 1, "resumed, not started again"
    assert fetched[0][0] is node2 and fetched[-1][0] is node1

    stored = stored_chunks(relay)
    assert len(stored) == pointer.blob_size
    data = source.read_bytes()
    for offset in range(0, len(data) - 64, len(data) // 50):
        assert data[offset : offset + 64] not in stored
