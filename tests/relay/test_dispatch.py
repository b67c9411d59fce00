"""The dispatch table: every frame a device may send has a handler, and a connection answers a
frame without one ``unsupported`` (served through a real connection over a stand-in socket)."""

from __future__ import annotations

import asyncio
import os
import typing

import pytest
from websockets.protocol import State

from relay.connection import Connection
from relay.handlers import HANDLERS
from shared import wire
from shared.auth import sign_login


class Socket:
    """The network side of a connection: what the relay sent."""

    remote_address = ("127.0.0.1", 1)

    def __init__(self) -> None:
        self.sent: list[wire.Frame] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(wire.decode_relay_frame(data))


def test_every_client_frame_has_a_handler():
    assert set(typing.get_args(wire.ClientFrame)) == set(HANDLERS)


async def test_a_frame_without_a_handler_is_answered_unsupported(kit, monkeypatch):
    alice = await kit.create("alice")
    socket = Socket()
    connection = Connection(kit.relay, socket)  # type: ignore[arg-type]
    monkeypatch.delitem(HANDLERS, wire.Inspect)
    await connection._serve(alice.session, wire.encode(wire.Inspect(rid=9, peer="bob")))
    assert socket.sent == [wire.Error(rid=9, code="unsupported")]


@pytest.mark.parametrize(
    "frame", [wire.Resume(rid=3, username="a", device_id="d" * 32, signature=bytes(64))]
)
async def test_a_second_login_is_refused(kit, frame):
    alice = await kit.create("alice")
    assert await kit.refused(alice, frame) == "already_logged_in"


class HungUpSocket(Socket):
    """A device that sent its login and hung up: the frame is still read after the close."""

    state = State.CLOSED

    def __init__(self, login: bytes) -> None:
        super().__init__()
        self.login = login

    async def recv(self) -> bytes:
        return self.login

    async def close(self, code: int, reason: str) -> None:
        pass


async def test_a_login_read_after_the_device_hung_up_replaces_no_live_connection(kit):
    alice = await kit.create("alice")
    live = kit.connect(alice)
    nonce = os.urandom(32)
    login = wire.Resume(
        rid=1,
        username="alice",
        device_id=alice.device_id,
        signature=sign_login(alice.key, nonce, "alice", alice.device_id),
    )
    connection = Connection(kit.relay, HungUpSocket(wire.encode(login)))  # type: ignore[arg-type]
    assert await connection._login(nonce, "127.0.0.1") is None
    await asyncio.sleep(0)  # a replaced connection would be closed in the background
    assert kit.relay.connections[alice.device_id] is live and live.closed == []
