"""Runs one device profile in its own process, for tests that kill a client for real.

With ``--die-before-ack N`` the process SIGKILLs itself just before sending its N-th
acknowledgement: the envelopes are decrypted and committed, but the relay never hears so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from client.core.client import AriadneClient
from client.core.link import LOCAL_RELAY
from shared import wire


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile", type=Path)
    parser.add_argument("--die-before-ack", type=int, default=0)
    args = parser.parse_args()
    client = await AriadneClient.open(args.profile, backoff=LOCAL_RELAY)
    acks = 0
    send = client.link.send

    async def send_or_die(frame: wire.Frame) -> None:
        nonlocal acks
        if isinstance(frame, wire.Ack):
            acks += 1
            if acks == args.die_before_ack:
                os.kill(os.getpid(), signal.SIGKILL)
        await send(frame)

    client.link.send = send_or_die  # type: ignore[method-assign]
    print("running", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
