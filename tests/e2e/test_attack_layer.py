"""The hostile-relay demo: the real relay process with its attack layer makes each attack, and the
clients catch every one (``ariadne chat-demo --hostile``); a relay without the flag takes no
operator command and has no attack on its path."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from client import hostile
from client.core import timeline as timeline_module
from client.core.client import AriadneClient
from client.core.events import DeliveryOverdue, MessageStatus
from client.core.ordering import Placement
from client.hostile_attacks import ATTACKS, run_headless
from relay.attacks import BANNER, AttackLayer, serve_operator
from relay.handlers import HANDLERS
from relay.server import Relay
from shared.operator import OperatorCommand, OperatorReport, encode
from tests.conftest import FAST, PASSWORD, eventually

REPO = Path(__file__).parents[2]


async def test_the_headless_hostile_run_catches_every_attack(tmp_path):
    lines: list[str] = []
    assert await run_headless(tmp_path, out=lines.append) == 0
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[1] for row in rows] == [a.title for a in ATTACKS]
    assert all(row.endswith("| yes |") for row in rows)
    assert "Every attack was caught." in lines[-1]
    shown = "\n".join(rows)
    assert "couldn't decrypt this message" in shown
    assert "bob's device list was rolled back by the relay — not accepted" in shown
    assert "they differ, so Bob rejects it" in shown
    assert "waiting for delivery" in shown
    assert "shown in the order alice sent them" in shown


async def test_an_attack_the_clients_miss_is_reported_and_fails_the_run(tmp_path, monkeypatch):
    """With the check that catches reordering taken out (a client that takes the relay's times
    as they come), the run says NOT CAUGHT and exits 1."""
    monkeypatch.setattr(timeline_module, "place", lambda *args: Placement(args[-1]))
    monkeypatch.setattr(hostile, "ANSWER_SECONDS", 3.0)  # it will not come: wait less
    lines: list[str] = []
    assert await run_headless(tmp_path, out=lines.append, only=("reorder",)) == 1
    assert any(line.startswith("| 1 | Reorder |") and "NOT CAUGHT" in line for line in lines)


def test_the_cli_runs_the_hostile_demo_and_the_relay_says_its_attack_layer_is_on(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "client.cli", "chat-demo", "--hostile", "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Every attack was caught." in result.stdout
    assert BANNER in result.stderr and "Traceback" not in result.stderr


async def test_a_relay_without_the_flag_takes_no_operator_command(tmp_path, accounts_on):
    """A normal relay never reads its standard input: a command written there is not obeyed
    (alice's message is not withheld) and nothing is answered."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "relay"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    url = line.rsplit(" ", 1)[1].strip()
    try:
        for attack in ("withhold", "flip"):
            process.stdin.write(
                encode(OperatorCommand(attack=attack, victim="bob", sender="alice"))
            )
        await process.stdin.drain()
        alice, bob = await accounts_on(url, "alice"), await accounts_on(url, "bob")
        sent = await alice.send_text("bob", "not held")
        await eventually(lambda: [m.body for m in bob.messages("alice")] == ["not held"])
        await eventually(
            lambda: alice._store.message(sent.message_id).status is MessageStatus.DELIVERED
        )
    finally:
        process.terminate()
        rest, errors = await process.communicate()
    assert rest == b""  # no operator report
    assert BANNER.encode() not in errors


async def test_an_in_process_relay_has_no_attack_on_its_path(relay):
    assert relay.relay.handlers is HANDLERS
    assert relay.relay.deliver.__func__ is Relay.deliver


async def test_the_attack_layer_says_so_loudly_and_a_bad_command_stops_nothing(relay, caplog):
    caplog.set_level(logging.WARNING, logger="ariadne.relay.attacks")
    reports: list[OperatorReport] = []
    AttackLayer(relay.relay, reports.append)
    assert BANNER in caplog.text
    assert relay.relay.handlers is not HANDLERS  # wrapped for this relay only
    reader = asyncio.StreamReader()
    reader.feed_data(b'{"attack": "launch missiles", "victim": "bob"}\n')
    reader.feed_data(b"not json\n")
    reader.feed_data(encode(OperatorCommand(attack="rollback", victim="bob")))
    reader.feed_eof()
    await serve_operator(reader=reader, layer=AttackLayer(relay.relay, reports.append))
    assert caplog.text.count("operator command refused") == 2
    assert [(r.attack, r.stage) for r in reports] == [("rollback", "refused")]


async def test_a_message_no_device_receives_is_shown_as_waiting(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    alice.delivery_watch.overdue_after = 0.5
    overdue: list[DeliveryOverdue] = []
    alice.add_listener(lambda e: overdue.append(e) if isinstance(e, DeliveryOverdue) else None)
    on_time = await alice.send_text("bob", "on time")
    await eventually(
        lambda: alice._store.message(on_time.message_id).status is MessageStatus.DELIVERED
    )
    await accounts.stop(bob)
    late = await alice.send_text("bob", "while bob is away")
    await eventually(lambda: overdue, message="the late message is shown as waiting")
    assert [(e.message_id, e.thread) for e in overdue] == [(late.message_id, "bob")]
    bob = await accounts.start(bob)
    await eventually(
        lambda: alice._store.message(late.message_id).status is MessageStatus.DELIVERED
    )
    assert len(overdue) == 1


@pytest.fixture
async def accounts_on(tmp_path):
    """Accounts on a relay at a given URL (a relay process the test started)."""
    made: list[AriadneClient] = []

    async def create(url: str, username: str) -> AriadneClient:
        client = await AriadneClient.create_account(
            tmp_path / username, url, username, PASSWORD, "Desktop", backoff=FAST
        )
        made.append(client)
        return client

    yield create
    for client in made:
        await client.close()


async def test_a_withheld_message_stays_off_the_queue_until_released(accounts, relay):
    """In-process: the layer takes the message out of Bob's queue (a reconnect does not bring it
    back) and gives it back on release."""
    reports: list[OperatorReport] = []
    layer = AttackLayer(relay.relay, reports.append)
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    layer.command(OperatorCommand(attack="withhold", victim="bob", sender="alice"))
    await alice.send_text("bob", "held")
    await eventually(lambda: reports[-1].stage == "done", message="the relay holds it")
    assert relay.relay.store.queue_length(bob.device_id) == 0
    bob = await accounts.reopen(bob)
    await bob.wait_online()
    await alice.send_text("bob", "after")  # the next one is not held
    await eventually(lambda: [m.body for m in bob.messages("alice")] == ["after"])
    layer.command(OperatorCommand(attack="release", victim="bob"))
    assert (reports[-1].stage, reports[-1].detail) == ("done", "gave back 1 held envelope(s)")
    await eventually(lambda: "held" in [m.body for m in bob.messages("alice")])
