"""A node that lost its database answers new connections ``busy`` (close code 1013, "try again")
instead of taking logins it cannot check, until its poll finds the database again. Real relay
node on a real PostgreSQL; the poll is left to the test so that the state is held for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared import wire
from tests.conftest import Postgres, RunningRelay


async def test_a_node_without_its_database_answers_busy_until_it_is_back(
    tmp_path: Path, postgres: Postgres
) -> None:
    running = RunningRelay(tmp_path / "relay", database=postgres.database(), poll_seconds=3600)
    await running.start()
    try:
        assert running.relay is not None and running.relay.nodes is not None
        running.relay.database_lost()
        async with connect(running.url) as ws:
            answer = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 20))
            assert isinstance(answer, wire.Error) and answer.code == "busy"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 20)
            assert ws.close_code == 1013
        running.relay.nodes.poll()  # the database answers again
        assert running.relay.ready
        async with connect(running.url) as ws:
            answer = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 20))
            assert isinstance(answer, wire.Challenge)
    finally:
        await running.stop()
