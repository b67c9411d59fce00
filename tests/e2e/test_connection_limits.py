"""Per-connection limits on a real relay: a logged-in device that keeps sending frames the relay
cannot decode, or more frames than its rate allows, is answered with the error's code and then
hung up on (close code 1008); a device that reads nothing while envelopes keep coming costs the
relay at most its live backlog in memory, the rest staying in the store.

The misbehaving devices are raw websockets logged in with real accounts' keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay.server import Limits
from shared import wire
from tests.conftest import Accounts, RunningRelay
from tests.e2e.flood import MESSAGES, flood_a_device_that_reads_nothing
from tests.e2e.test_limits import logged_in

LIMITS = Limits(
    frames_per_second=0.001,  # no refill within a test
    frame_burst=5,
    max_rate_violations=3,
    max_bad_frames=4,
)
BACKLOG = Limits(live_backlog=8, delivery_page=4)


@pytest.fixture(params=[LIMITS], ids=["strict"])
async def strict(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Accounts]:
    running = RunningRelay(tmp_path / "relay", request.param)
    await running.start()
    made = Accounts(running, tmp_path / "profiles")
    yield made
    await made.close()
    await running.stop()


async def _answers_until_closed(ws: ClientConnection) -> list[wire.Frame]:
    """Everything the relay sends until it hangs up (fails if it does not within the deadline)."""
    frames = []
    with pytest.raises(ConnectionClosed):
        while True:
            frames.append(wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 20)))
    return frames


async def test_a_device_that_keeps_sending_bad_frames_is_hung_up_on(strict: Accounts):
    bob = await strict.create("bob")
    await strict.stop(bob)
    async with logged_in(strict.relay.url, bob) as ws:
        for _ in range(LIMITS.max_bad_frames):
            await ws.send(b"\xff not a frame")
        answers = await _answers_until_closed(ws)
        assert ws.close_code == 1008
    assert [a.code for a in answers if isinstance(a, wire.Error)] == ["bad_frame"] * 4
    # Only that connection: the device logs in again and is served.
    async with logged_in(strict.relay.url, bob) as ws:
        await ws.send(wire.encode(wire.ListDevices(rid=9)))
        assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Devices)


async def test_a_device_that_floods_is_answered_rate_limited_then_hung_up_on(strict: Accounts):
    bob = await strict.create("bob")
    await strict.stop(bob)
    async with logged_in(strict.relay.url, bob) as ws:
        # Acknowledgements have no answer: only the limit's answers come back.
        within = int(LIMITS.frame_burst)
        beyond = LIMITS.max_rate_violations + 1
        for _ in range(within + beyond):
            await ws.send(wire.encode(wire.Ack(seqs=[1])))
        answers = await _answers_until_closed(ws)
        assert ws.close_code == 1008
    codes = [a.code for a in answers if isinstance(a, wire.Error)]
    assert codes == ["rate_limited"] * LIMITS.max_rate_violations


@pytest.mark.parametrize("strict", [BACKLOG], indirect=True, ids=["backlog"])
async def test_a_device_that_reads_nothing_holds_at_most_its_live_backlog_in_memory(
    strict: Accounts,
):
    """Bob's device reads nothing while alice's fan-outs to it keep coming: its socket and the
    relay's buffer for it fill, and what is committed for it after that waits in the store, not
    in the connection (at most ``live_backlog`` envelopes there); it gets all of it in order
    once it reads again."""
    live: list[int] = []
    got = await flood_a_device_that_reads_nothing(strict, lambda bob: live.append(len(bob._live)))
    assert live[0] <= BACKLOG.live_backlog, live
    assert [number for _, number in got] == list(range(1, MESSAGES + 1))


@pytest.mark.parametrize("strict", [Limits(login_timeout=0.5)], indirect=True, ids=["login"])
async def test_a_connection_that_never_logs_in_is_hung_up_on(strict: Accounts):
    """It holds one of the few login slots: the relay closes it when its time to log in is up."""
    async with connect(strict.relay.url) as ws:
        assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Challenge)
        assert await _answers_until_closed(ws) == []
        assert ws.close_code == 1008
