"""10,000+ malformed, truncated, oversized and out-of-order frames against a running relay, while a
well-behaved pair of clients keeps chatting through it (PROTOCOL.md §3 "Limits")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random

import msgspec
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from shared import wire
from shared.auth import sign_login
from shared.identity import SigningKey, device_id_for
from tests.conftest import eventually

FRAMES = 10_000
PROBE = 2**40


def _valid_frames(rng: random.Random) -> list[bytes]:
    key = SigningKey.generate()
    device = wire.DeviceRegistration(
        device_id=device_id_for(key.public),
        name="x",
        sign_public=key.public,
        storage_key=key.public,
    )
    return [
        wire.encode(f)
        for f in [
            wire.Resume(rid=1, username="alice", device_id=device.device_id, signature=bytes(64)),
            wire.AddDevice(
                rid=2, username="alice", password="x" * 8, device=device, signature=bytes(64)
            ),
            wire.Send(
                rid=3,
                send_id=bytes(16),
                recipients=[
                    wire.RecipientEnvelopes(
                        username="bob", envelopes=[wire.Envelope(device_id="0" * 16, payload=b"x")]
                    )
                ],
            ),
            wire.Ack(seqs=[1, 2, 3]),
            wire.FetchBundles(rid=4, username="alice", device_ids=["0" * 16]),
            wire.PublishKeys(
                rid=5,
                identity_key=bytes(32),
                signed_pre_key=bytes(32),
                signed_pre_key_sig=bytes(64),
                one_time_pre_keys=[bytes(32)],
            ),
            wire.ListDevices(rid=6),
        ]
    ]


def _mutate(rng: random.Random, seeds: list[bytes]) -> bytes | str:
    frame = bytearray(rng.choice(seeds))
    kind = rng.randrange(8)
    if kind == 0:  # truncated
        return bytes(frame[: rng.randrange(len(frame))])
    if kind == 1:  # bit flips
        for _ in range(rng.randint(1, 8)):
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        return bytes(frame)
    if kind == 2:  # random bytes
        return os.urandom(rng.randint(0, 300))
    if kind == 3:  # valid MessagePack, wrong schema
        return msgspec.msgpack.encode(
            rng.choice(
                [
                    {"t": "send", "rid": -1},
                    {"t": "ack", "seqs": "all"},
                    [1, 2, 3],
                    None,
                    {"t": "nope"},
                    {"t": "ack", "seqs": [2**64 - 1]},
                    {"t": "resume", "rid": 1, "v": 2},
                ]
            )
        )
    if kind == 4:  # text frame
        return "hello relay"
    if kind == 5:  # deeply nested
        return b"\x91" * rng.randint(100, 5000)
    if kind == 6:  # huge declared length
        return b"\xc6\xff\xff\xff\xff" + os.urandom(20)
    return bytes(frame)  # a valid frame, out of order (before or instead of login)


def _answers_expected(frame: bytes | str, logged_in: bool) -> int:
    """Every frame gets one answer, but an acknowledgement from a logged-in device gets none."""
    if not logged_in:
        return 1
    try:
        return 0 if isinstance(wire.decode_client_frame(frame), wire.Ack) else 1
    except wire.WireError:
        return 1


async def _hammer(url: str, frames: list[bytes | str], device=None) -> dict[str, int]:
    """Send ``frames`` one at a time and count the relay's answers to each, reconnecting whenever
    the relay hangs up (a frame whose connection closed before its answer is sent again). With
    ``device`` (a client), log in as that device first, so the frames hit the authenticated
    path; nothing else may log in as that device meanwhile (the relay keeps one connection per
    device and would hang up on this one for the newer). ``unanswered`` counts the frames whose
    answers were not what the relay owes."""
    outcome = {"frames": 0, "errors": 0, "closed": 0, "unanswered": 0}
    pending = list(frames)
    closes = 0  # of connections that closed after the next frame was sent, before its answers
    while pending:
        sent = False  # the next frame went out on this connection (a close before is no answer)
        try:
            async with connect(url, compression=None, max_size=None) as ws:
                challenge = wire.decode_relay_frame(await ws.recv())
                if device is not None:
                    await ws.send(
                        wire.encode(
                            wire.Resume(
                                rid=0,
                                username=device.username,
                                device_id=device.device_id,
                                signature=sign_login(
                                    device.profile.sign_key,
                                    challenge.nonce,
                                    device.username,
                                    device.device_id,
                                ),
                            )
                        )
                    )
                    assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Welcome)
                while pending:
                    sent = False
                    await ws.send(pending[-1])
                    sent = True
                    answers = errors = 0
                    if device is None:
                        reply = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 10))
                        assert isinstance(reply, wire.Error | wire.Welcome | wire.NotRegistered)
                        answers, errors = 1, isinstance(reply, wire.Error | wire.NotRegistered)
                    else:
                        # Some valid frames have no answer: a probe marks the end of the answers.
                        await ws.send(wire.encode(wire.ListDevices(rid=PROBE)))
                        while True:
                            reply = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 10))
                            if getattr(reply, "rid", None) == PROBE:
                                break
                            if isinstance(reply, wire.Deliver | wire.Notice | wire.PairingPush):
                                continue  # pushed, not an answer
                            answers += 1
                            errors += isinstance(reply, wire.Error)
                    frame = pending.pop()
                    closes = 0
                    outcome["frames"] += 1
                    outcome["errors"] += errors
                    outcome["unanswered"] += answers != _answers_expected(frame, device is not None)
        except websockets.ConnectionClosed:
            outcome["closed"] += 1
            if not sent:
                continue
            closes += 1
            if closes == 3:  # the relay hangs up on this frame without answering it
                pending.pop()
                closes = 0
                outcome["frames"] += 1
                outcome["unanswered"] += 1
    return outcome


async def test_relay_survives_ten_thousand_bad_frames_while_clients_chat(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    # Real accounts, sending garbage once logged in: one device for each hammer, and their own
    # clients offline, so that no newer login replaces a hammer's connection mid-frame.
    mallory = await accounts.create("mallory")
    trudy = await accounts.create("trudy")
    await accounts.stop(mallory)
    await accounts.stop(trudy)
    rng = random.Random(1234)
    seeds = _valid_frames(rng)
    frames = [_mutate(rng, seeds) for _ in range(FRAMES)]
    devices = [None, mallory, None, trudy]
    hammers = [asyncio.create_task(_hammer(relay.url, frames[i::4], devices[i])) for i in range(4)]

    chat = [f"good message {i}" for i in range(60)]
    for text in chat:
        await (alice.send_text("bob", text) if len(text) % 2 else bob.send_text("alice", text))
    outcomes = await asyncio.gather(*hammers)
    await eventually(lambda: len(bob.messages("alice")) == 60, timeout=30)
    await eventually(lambda: len(alice.messages("bob")) == 60, timeout=30)
    assert sorted(m.body for m in alice.messages("bob")) == sorted(chat)
    assert sum(o["frames"] for o in outcomes) == FRAMES
    assert sum(o["unanswered"] for o in outcomes) == 0, "the relay left frames unanswered"
    assert sum(o["errors"] for o in outcomes) >= FRAMES // 2
    assert relay.relay is not None and alice.link.online.is_set()


async def test_oversized_frame_closes_the_connection(relay):
    async with connect(relay.url, compression=None, max_size=None) as ws:
        await ws.recv()
        await ws.send(b"\x00" * (wire.MAX_FRAME_BYTES + 1))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1009  # message too big


async def test_unauthenticated_connection_can_do_nothing(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await accounts.stop(bob)
    await alice.send_text("bob", "queued for bob")

    async def first_answer(frame: wire.Frame) -> wire.Frame:
        async with connect(relay.url, compression=None) as ws:
            await ws.recv()
            await ws.send(wire.encode(frame))
            answer = wire.decode_relay_frame(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)  # and the relay hangs up
            return answer

    for frame in [
        wire.FetchBundles(rid=1, username="bob", device_ids=[bob.device_id]),
        wire.Ack(seqs=[1]),
        wire.ListDevices(rid=1),
        wire.FetchDeviceList(rid=1, username="bob"),
    ]:
        answer = await first_answer(frame)
        assert isinstance(answer, wire.Error) and answer.code == "login_required"
    # Knowing bob's device id is not enough: the login must be signed by bob's device key.
    impostor = SigningKey.generate()
    async with connect(relay.url, compression=None) as ws:
        challenge = wire.decode_relay_frame(await ws.recv())
        await ws.send(
            wire.encode(
                wire.Resume(
                    rid=1,
                    username="bob",
                    device_id=bob.device_id,
                    signature=sign_login(impostor, challenge.nonce, "bob", bob.device_id),
                )
            )
        )
        answer = wire.decode_relay_frame(await ws.recv())
        assert isinstance(answer, wire.Error) and answer.code == "bad_signature"
    bob = await accounts.start(bob)
    await eventually(lambda: [m.body for m in bob.messages("alice")] == ["queued for bob"])


async def test_pre_key_fetches_are_limited(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    codes = []
    for _ in range(80):
        try:
            await alice.link.request(
                lambda rid: wire.FetchBundles(rid=rid, username="bob", device_ids=[bob.device_id])
            )
        except Exception as exc:  # RelayError
            codes.append(getattr(exc, "code", type(exc).__name__))
    assert codes and set(codes) == {"rate_limited"}
    left = relay.relay.store.pre_key_count(bob.device_id)
    assert left >= 100 - 61, "at most the burst of one-time pre-keys was handed out"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_decoding_arbitrary_bytes_never_raises_anything_but_wire_error(data):
    with contextlib.suppress(wire.WireError):
        wire.decode_client_frame(data)


@settings(max_examples=2000, deadline=None)
@given(
    st.integers(0, 6), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6)
)
def test_decoding_mutated_frames_never_raises_anything_but_wire_error(which, edits):
    frame = bytearray(_valid_frames(random.Random(0))[which])
    for position, value in edits:
        frame[position % len(frame)] = value
    with contextlib.suppress(wire.WireError):
        wire.decode_client_frame(bytes(frame))


def test_invalid_utf8_in_a_tag_is_a_wire_error():
    with pytest.raises(wire.WireError):
        wire.decode_client_frame(b"\x81\xa1t\xa3\xff\xfe\xfd")
