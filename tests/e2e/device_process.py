"""Runs one device profile in its own process, for tests that kill a client for real.

- ``--die-before-ack N``: the process SIGKILLs itself just before sending its N-th
  acknowledgement: the envelopes are decrypted and committed, but the relay never hears so.
- ``--send-to PEER --count N``: sends ``"<label> <i>"`` to PEER for every i below N that this
  profile has not stored yet (so a restarted process goes on where the killed one stopped: a
  message is stored in one transaction with its outbox entry, or not at all), one at a time with
  a seeded pause (``--pause``); prints ``sent <i>`` after each and ``done`` at the end, then
  keeps receiving.
- On stdin, ``report`` prints ``report <json>``: every conversation as this device holds it
  (message id, sender, body, status), system lines left out.
- The test-only fault hook: with ``ARIADNE_FAULT`` set (for example
  ``before_ack=0.03,before_send=0.03,after_accepted=0.03``), the process SIGKILLs itself at those
  code points with that probability (seeded by ``--seed``): before an Ack, before a Send, after
  the relay's Accepted (before the outbox records it). Unset, nothing is wrapped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path

from client.core.client import AriadneClient
from client.core.link import LOCAL_RELAY
from shared import wire

FAULT_ENV = "ARIADNE_FAULT"


def _faults() -> dict[str, float]:
    spec = os.environ.get(FAULT_ENV, "")
    points = (part.split("=") for part in spec.split(",") if part)
    return {name: float(chance) for name, chance in points}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(client: AriadneClient, die_before_ack: int, seed: int) -> None:
    faults = _faults()
    chance = random.Random(seed)
    acks = 0
    send, request = client.link.send, client.link.request

    def fault(point: str) -> None:
        if chance.random() < faults.get(point, 0.0):
            _die()

    async def send_or_die(frame: wire.Frame) -> None:
        nonlocal acks
        if isinstance(frame, wire.Ack):
            acks += 1
            if acks == die_before_ack:
                _die()
            fault("before_ack")
        await send(frame)

    async def request_or_die(make, expect=wire.Frame):  # type: ignore[no-untyped-def]
        is_send = isinstance(make(0), wire.Send)
        if is_send:
            fault("before_send")
        answer = await request(make, expect)
        if is_send and isinstance(answer, wire.Accepted):
            fault("after_accepted")
        return answer

    if die_before_ack or faults.get("before_ack"):
        client.link.send = send_or_die  # type: ignore[method-assign]
    if faults.get("before_send") or faults.get("after_accepted"):
        client.link.request = request_or_die  # type: ignore[method-assign]


def _report(client: AriadneClient) -> dict[str, list[list[str]]]:
    return {
        thread: [
            [m.message_id.hex(), m.sender_user, m.sender_device, m.body, m.status.value]
            for m in client.messages(thread, limit=100_000)
            if not m.system
        ]
        for thread in client.threads()
    }


async def _serve_reports(client: AriadneClient) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return  # stdin is not a pipe: nobody asks for reports
    while line := await reader.readline():
        if line.strip() == b"report":
            print("report", json.dumps(_report(client)), flush=True)


async def _send(
    client: AriadneClient, peer: str, label: str, count: int, pause_at_most: float, seed: int
) -> None:
    pause = random.Random(seed)
    stored = {m.body for m in client.messages(peer, limit=100_000)}
    for i in range(count):
        text = f"{label} {i}"
        if text not in stored:
            await client.send_text(peer, text)
            print("sent", i, flush=True)
            await asyncio.sleep(pause.uniform(0.0, pause_at_most))
    print("done", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile", type=Path)
    parser.add_argument("--die-before-ack", type=int, default=0)
    parser.add_argument("--send-to", default="")
    parser.add_argument("--label", default="")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between sends, at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    client = await AriadneClient.open(args.profile, backoff=LOCAL_RELAY)
    _hook(client, args.die_before_ack, args.seed)
    print("running", flush=True)
    tasks = [asyncio.create_task(_serve_reports(client))]
    if args.send_to:
        tasks.append(
            asyncio.create_task(
                _send(client, args.send_to, args.label, args.count, args.pause, args.seed)
            )
        )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
