"""Attachment handlers against a real store, without websockets: uploads that resume, fetches
only with the capability and a reference, the quota, and blobs that go with their last
reference or when they expire; on SQLite (bytes in a file per blob) and PostgreSQL (bytes in
rows, one per uploaded chunk)."""

from __future__ import annotations

import hashlib
import os

import pytest

from relay.limits import Limits
from relay.store import RelayStore
from shared import wire
from shared.attachment import MAX_BLOB

pytestmark = pytest.mark.backends()


def held_bytes(store, blob_id: bytes) -> int | None:  # type: ignore[no-untyped-def]
    """How many bytes of the blob the store holds (None: nothing), read from where it keeps
    them."""
    if isinstance(store, RelayStore):
        path = store.blob_dir / blob_id.hex()
        return path.stat().st_size if path.exists() else None
    held = store._value("SELECT sum(length(data)) FROM blob_chunks WHERE blob_id = $1", blob_id)
    return None if held is None else int(held)


async def upload(kit, device, data: bytes, readers=("bob",), cap: bytes | None = None):  # type: ignore[no-untyped-def]
    cap = cap or os.urandom(32)
    slot = await kit.call(
        device,
        wire.StartUpload(
            rid=1,
            size=len(data),
            capability_hash=hashlib.sha256(cap).digest(),
            readers=list(readers),
        ),
    )
    assert isinstance(slot, wire.UploadSlot)
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + wire.BLOB_FRAME]
        reply = await kit.call(
            device, wire.UploadChunk(rid=2, blob_id=slot.blob_id, offset=offset, data=piece)
        )
        assert isinstance(reply, wire.BlobProgress)
        offset = reply.received
    return slot.blob_id, cap


def fetch(blob_id: bytes, cap: bytes, offset: int = 0, length: int = wire.BLOB_FRAME):  # type: ignore[no-untyped-def]
    return wire.FetchBlob(rid=3, blob_id=blob_id, capability=cap, offset=offset, length=length)


async def test_a_reader_with_the_capability_fetches_what_was_uploaded(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    data = os.urandom(wire.BLOB_FRAME * 2 + 5)
    blob_id, cap = await upload(kit, alice, data)
    got = b""
    while len(got) < len(data):
        chunk = await kit.call(bob, fetch(blob_id, cap, len(got)))
        got += chunk.data
    assert got == data
    own = await kit.call(alice, fetch(blob_id, cap, 0, 10))  # the uploader's account too
    assert own.data == data[:10]


async def test_no_fetch_without_the_capability_or_a_reference(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    mallory = await kit.create("mallory")
    blob_id, cap = await upload(kit, alice, os.urandom(1000))
    assert await kit.refused(bob, fetch(blob_id, os.urandom(32))) == "no_blob"
    assert await kit.refused(mallory, fetch(blob_id, cap)) == "no_blob"  # never a reader
    assert await kit.refused(bob, fetch(os.urandom(16), cap)) == "no_blob"
    laptop = await kit.pending("bob")
    assert await kit.refused(laptop, fetch(blob_id, cap)) == "pending_device"


async def test_an_unfinished_upload_is_not_handed_out_and_resumes_where_it_stopped(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    cap = os.urandom(32)
    data = os.urandom(3000)
    slot = await kit.call(
        alice,
        wire.StartUpload(
            rid=1, size=3000, capability_hash=hashlib.sha256(cap).digest(), readers=["bob"]
        ),
    )
    first = await kit.call(
        alice, wire.UploadChunk(rid=2, blob_id=slot.blob_id, offset=0, data=data[:1000])
    )
    assert first.received == 1000
    assert await kit.refused(bob, fetch(slot.blob_id, cap)) == "no_blob"
    # The answer was lost; the device resends from its own offset: nothing is written twice.
    again = await kit.call(
        alice, wire.UploadChunk(rid=2, blob_id=slot.blob_id, offset=0, data=data[:1000])
    )
    assert again.received == 1000
    ahead = await kit.call(
        alice, wire.UploadChunk(rid=2, blob_id=slot.blob_id, offset=2000, data=data[2000:])
    )
    assert ahead.received == 1000  # not written: the answer says where to resume
    rest = await kit.call(
        alice, wire.UploadChunk(rid=2, blob_id=slot.blob_id, offset=1000, data=data[1000:])
    )
    assert rest.received == 3000
    assert (await kit.call(bob, fetch(slot.blob_id, cap))).data == data
    too_long = wire.UploadChunk(rid=2, blob_id=slot.blob_id, offset=3000, data=b"x")
    assert await kit.refused(alice, too_long) == "bad_request"
    assert await kit.refused(bob, too_long) == "no_blob"  # only the uploader writes


async def test_any_range_reads_back_exactly_across_uneven_chunks(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    cap = os.urandom(32)
    data = os.urandom(3000)
    slot = await kit.call(
        alice,
        wire.StartUpload(
            rid=1, size=3000, capability_hash=hashlib.sha256(cap).digest(), readers=["bob"]
        ),
    )
    for start, end in ((0, 700), (700, 2000), (2000, 2001), (2001, 3000)):
        reply = await kit.call(
            alice, wire.UploadChunk(rid=2, blob_id=slot.blob_id, offset=start, data=data[start:end])
        )
        assert reply.received == end
    assert held_bytes(kit.store, slot.blob_id) == 3000
    for offset, length in ((0, 1), (0, 3000), (650, 100), (700, 1300), (699, 1303), (1999, 3)):
        got = await kit.call(bob, fetch(slot.blob_id, cap, offset, length))
        assert got.data == data[offset : offset + length], (offset, length)
    for offset in (2990, 3000):  # the end of the blob: what is left, then nothing
        got = await kit.call(bob, fetch(slot.blob_id, cap, offset, 100))
        assert got.data == data[offset:]
    assert await kit.refused(bob, fetch(slot.blob_id, cap, 3001, 1)) == "bad_request"


async def test_the_quota_answers_with_its_code(kit):
    kit.relay.limits = Limits(blob_bytes=10_000)
    alice = await kit.create("alice")
    await kit.create("bob")
    blob_id, cap = await upload(kit, alice, os.urandom(6000))
    start = wire.StartUpload(rid=1, size=6000, capability_hash=bytes(32), readers=[])
    assert await kit.refused(alice, start) == "blob_quota"
    too_large = wire.StartUpload(rid=1, size=MAX_BLOB + 1, capability_hash=bytes(32), readers=[])
    assert await kit.refused(alice, too_large) == "blob_too_large"
    assert isinstance(
        await kit.call(alice, wire.ReleaseBlob(rid=4, blob_id=blob_id, capability=cap)), wire.Ok
    )
    # bob still holds a reference: the blob stays (and counts) until he releases it too
    assert await kit.refused(alice, start) == "blob_quota"


async def test_a_blob_goes_with_its_last_reference(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    blob_id, cap = await upload(kit, alice, os.urandom(2000))
    assert held_bytes(kit.store, blob_id) == 2000
    await kit.call(bob, wire.ReleaseBlob(rid=4, blob_id=blob_id, capability=cap))
    assert await kit.refused(bob, fetch(blob_id, cap)) == "no_blob"
    assert (await kit.call(alice, fetch(blob_id, cap))).data  # alice's reference holds it
    await kit.call(alice, wire.ReleaseBlob(rid=4, blob_id=blob_id, capability=cap))
    assert kit.store.blob(blob_id) is None and held_bytes(kit.store, blob_id) is None


async def test_an_abandoned_upload_goes_at_once(kit):
    alice = await kit.create("alice")
    await kit.create("bob")
    cap = os.urandom(32)
    slot = await kit.call(
        alice,
        wire.StartUpload(
            rid=1, size=500, capability_hash=hashlib.sha256(cap).digest(), readers=["bob"]
        ),
    )
    await kit.call(alice, wire.ReleaseBlob(rid=4, blob_id=slot.blob_id, capability=cap))
    assert kit.store.blob(slot.blob_id) is None


async def test_blobs_expire(kit):
    alice = await kit.create("alice")
    await kit.create("bob")
    done, _ = await upload(kit, alice, os.urandom(100))
    unfinished = await kit.call(
        alice, wire.StartUpload(rid=1, size=100, capability_hash=bytes(32), readers=[])
    )
    store = kit.store
    created = store.blob(done).created_at
    assert store.expire_blobs(created - 1, created - 1) == 0
    assert store.expire_blobs(created + 1, created - 1) == 1  # the unfinished one only
    assert store.blob(unfinished.blob_id) is None and store.blob(done) is not None
    assert store.expire_blobs(created + 1, created + 1) == 1
    assert store.blob(done) is None and held_bytes(store, done) is None
    assert not store.blob_readable_by(done, "alice")


@pytest.mark.backends("postgres")
async def test_a_read_takes_only_the_chunks_its_range_touches(kit, monkeypatch):
    """On PostgreSQL a blob's bytes are rows: a fetch reads the rows its range overlaps and no
    other, so a large blob never passes through the relay whole for one frame of it."""
    alice, bob = await kit.create("alice"), await kit.create("bob")
    cap = os.urandom(32)
    data = os.urandom(8000)
    slot = await kit.call(
        alice,
        wire.StartUpload(
            rid=1, size=8000, capability_hash=hashlib.sha256(cap).digest(), readers=["bob"]
        ),
    )
    for start in range(0, 8000, 1000):
        chunk = wire.UploadChunk(
            rid=2, blob_id=slot.blob_id, offset=start, data=data[start : start + 1000]
        )
        await kit.call(alice, chunk)
    store = kit.store
    read = store._rows
    chunks_read: list[int] = []

    def counting(sql, *args):  # type: ignore[no-untyped-def]
        rows = read(sql, *args)
        if "FROM blob_chunks" in sql:
            chunks_read.append(len(rows))
        return rows

    monkeypatch.setattr(store, "_rows", counting)
    for offset, length, touched in ((0, 1000, 1), (3000, 1000, 1), (3010, 1000, 2), (7999, 50, 1)):
        chunks_read.clear()
        got = await kit.call(bob, fetch(slot.blob_id, cap, offset, length))
        assert got.data == data[offset : offset + length]
        assert chunks_read == [touched], (offset, length)
