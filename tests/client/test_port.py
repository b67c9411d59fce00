"""The relay port: a reply of the wrong type is a typed relay error, on the real websocket link
and on the fake alike (no assertion after a request is left to catch it)."""

from __future__ import annotations

import pytest
from websockets.asyncio.server import serve

from client.core.events import ConnectionState
from client.core.link import Backoff, RelayLink
from client.core.port import RelayError, UnexpectedReply
from shared import wire
from tests.client.fake_relay import FakeRelay
from tests.conftest import eventually


async def _no_setup(_welcome: wire.Welcome) -> None:
    return None


async def test_the_link_turns_a_reply_of_another_type_into_unexpected_reply():
    async def confused_relay(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.send(wire.encode(wire.Challenge(nonce=b"n" * 32)))
        login = wire.decode_client_frame(await ws.recv())
        await ws.send(
            wire.encode(wire.Welcome(rid=login.rid, device_id="0" * 16, one_time_pre_keys_left=1))
        )
        async for data in ws:
            request = wire.decode_client_frame(data)
            await ws.send(wire.encode(wire.Ok(rid=request.rid)))  # whatever was asked

    async with serve(confused_relay, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        link = RelayLink(
            f"ws://127.0.0.1:{port}",
            lambda nonce, rid: wire.ListDevices(rid=rid),
            lambda frame: None,
            lambda state, detail: None,
            _no_setup,
            Backoff(0.05, 1.5, 0.3),
        )
        link.start()
        try:
            await eventually(lambda: link.state is ConnectionState.ONLINE)
            with pytest.raises(UnexpectedReply) as wrong:
                await link.request(lambda rid: wire.ListDevices(rid=rid), expect=wire.Devices)
            assert wrong.value.code == "unexpected_reply" and isinstance(wrong.value, RelayError)
            # Not even a caller that takes any frame gets one the protocol does not give.
            with pytest.raises(UnexpectedReply):
                await link.request(lambda rid: wire.ListDevices(rid=rid), expect=wire.Frame)
            assert isinstance(
                await link.request(lambda rid: wire.RejectDevice(rid=rid, device_id="0" * 16)),
                wire.Ok,
            )
        finally:
            await link.close()


async def test_the_fake_relay_checks_replies_like_the_link():
    fake = FakeRelay({wire.ListDevices: wire.Ok(rid=0)})
    with pytest.raises(UnexpectedReply):
        await fake.request(lambda rid: wire.ListDevices(rid=rid), expect=wire.Devices)
    fake.answer(wire.ListDevices, wire.Error(rid=0, code="pending_device"))
    with pytest.raises(RelayError, match="pending_device"):
        await fake.request(lambda rid: wire.ListDevices(rid=rid), expect=wire.Devices)
    fake.answer(wire.ListDevices, wire.Devices(rid=0, devices=[]))
    devices = await fake.request(lambda rid: wire.ListDevices(rid=rid), expect=wire.Devices)
    assert devices.devices == [] and devices.rid == len(fake.requests)
