"""The scripted demo: a relay, Alice with two devices and Bob, talking; then what the relay holds.

The relay runs as its own process (``python -m relay``), exactly as in production: the client
package never imports the relay's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from client.core.client import AriadneClient
from client.core.events import (
    ConnectionStateChanged,
    DeliveryUpdated,
    DeviceListChanged,
    DeviceRemoved,
    Event,
    MessageReceived,
    MessageStatus,
    PairingCodeShown,
)
from client.core.link import INTERACTIVE
from shared.envelope import decode_sealed

DEMO_PASSWORD = "ariadne demo password"


@contextlib.asynccontextmanager
async def relay_process(data_dir: Path) -> AsyncIterator[str]:
    """Start ``python -m relay`` on a free loopback port; yields its URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        if "listening on" not in line:
            raise RuntimeError("the relay did not start")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """SIGTERM (the relay closes its connections and its store), SIGKILL if it does not end.
    A relay already gone (Ctrl+C in a terminal reaches the whole process group) is fine."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _narrate(client: AriadneClient, out) -> None:  # type: ignore[no-untyped-def]
    who = f"{client.username}/{client.device_name}"

    def on_event(event: Event) -> None:
        match event:
            case MessageReceived(message=m) if m.system:
                out(f"  [{who}] — {m.body}")
            case MessageReceived(message=m) if m.undecryptable:
                out(f"  [{who}] could not decrypt a message from {m.sender_user}")
            case MessageReceived(message=m):
                out(f"  [{who}] received in '{m.thread}' from {m.sender_user}: {m.body}")
            case DeliveryUpdated(status=status, thread=thread):
                out(f"  [{who}] message to {thread} is now {status.value}")
            case DeviceListChanged(username=user, version=version, added=added):
                plural = "s" if len(added) > 1 else ""
                out(
                    f"  [{who}] {user}'s device list is now version {version}"
                    + (f" (+{len(added)} device{plural})" if added else "")
                )
            case DeviceRemoved(username=user):
                out(f"  [{who}] this device was removed from {user}'s account")
            case ConnectionStateChanged(state=state) if client.removed:
                pass  # said above
            case ConnectionStateChanged(state=state, detail=detail):
                out(f"  [{who}] relay: {state.value} {detail}".rstrip())

    client.add_listener(on_event)


async def _until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def run_headless(workdir: Path | None = None, out=print) -> int:  # type: ignore[no-untyped-def]
    root = Path(workdir or tempfile.mkdtemp(prefix="ariadne-demo-"))
    try:
        async with relay_process(root / "relay") as url:
            out(f"Relay running at {url} (data in {root / 'relay'})\n")
            out("1. Alice and Bob create accounts; Alice adds and approves a laptop.")
            alice = await AriadneClient.create_account(
                root / "alice-desktop", url, "alice", DEMO_PASSWORD, "Desktop", backoff=INTERACTIVE
            )
            bob = await AriadneClient.create_account(
                root / "bob-desktop", url, "bob", DEMO_PASSWORD, "Desktop", backoff=INTERACTIVE
            )
            laptop = await AriadneClient.add_device(
                root / "alice-laptop", url, "alice", DEMO_PASSWORD, "Laptop", backoff=INTERACTIVE
            )
            clients = [alice, bob, laptop]
            for client in clients:
                _narrate(client, out)
            await _until(lambda: alice.is_member and bob.is_member)
            out(f"  laptop pending: {not laptop.is_member}")
            shown: list[str] = []
            laptop.add_listener(
                lambda e: shown.append(e.code) if isinstance(e, PairingCodeShown) else None
            )
            await laptop.offer_pairing()
            code = await alice.pairing_code(laptop.device_id)
            await _until(lambda: bool(shown))
            out(f"  pairing code on the desktop: {code}   on the laptop: {shown[-1]}")
            await laptop.confirm_pairing()  # the user saw the codes match, on the laptop too
            await alice.approve_device(laptop.device_id)
            await _until(lambda: laptop.is_member)

            out("\n2. They talk. Every device of both users gets every message.")
            await alice.send_text("bob", "Hi Bob! Sent from my desktop.")
            await _until(lambda: len(bob.messages("alice")) == 1)
            await bob.send_text("alice", "Hi Alice, got it.")
            await _until(lambda: len(laptop.messages("bob")) == 2)
            await laptop.send_text("bob", "And this is from my laptop.")
            await _until(
                lambda: len(bob.messages("alice")) == 3 and len(alice.messages("bob")) == 3
            )

            out("\n3. Bob goes offline; Alice writes twice. What does the relay hold?")
            bob_dir = bob.profile_dir
            await bob.close()
            secret = [
                await alice.send_text("bob", "Secret plans for Saturday"),
                await alice.send_text("bob", "Bring the map."),
            ]
            # "sent" means the relay committed the envelopes to its queues.
            await _until(
                lambda: all(
                    m.status is not MessageStatus.SENDING for m in alice.messages("bob")[-2:]
                )
            )
            with sqlite3.connect(root / "relay" / "relay.sqlite3") as db:
                rows = db.execute(
                    "SELECT seq, device_id, sender_device, length(payload),"
                    " payload FROM queue ORDER BY seq"
                ).fetchall()
            out("   seq  for device        from device      bytes  ciphertext (first 24 bytes)")
            for seq, device, sender, size, payload in rows:
                ciphertext = decode_sealed(payload).ciphertext
                out(f"   {seq:<4} {device}  {sender}  {size:>5}  {ciphertext[:24].hex()}")
            assert not any(m.body.encode() in p for m in secret for *_, p in rows)
            out("   No plaintext: the relay sees who, when and how big (padded), nothing else.")

            out("\n4. Bob comes back; the queue drains and the messages arrive.")
            bob = await AriadneClient.open(bob_dir, backoff=INTERACTIVE)
            clients[1] = bob
            _narrate(bob, out)
            await _until(lambda: len(bob.messages("alice")) == 5)

            out("\n5. The conversation, as each device shows it:")
            for client in clients:
                thread = "bob" if client.username == "alice" else "alice"
                out(f"  {client.username}/{client.device_name}:")
                for m in client.messages(thread):
                    out(f"    {m.sender_user:>5}: {m.body}  [{m.status.value}]")

            out("\n6. Alice removes her laptop: new device list, new epoch without it.")
            await alice.remove_device(laptop.device_id)
            await _until(lambda: laptop.removed)
            await alice.send_text("bob", "The laptop is gone; it cannot read this.")
            await _until(lambda: bob.messages("alice")[-1].body.startswith("The laptop is gone"))
            listed = bob.directory.known("alice")
            assert listed is not None and laptop.device_id not in listed.device_ids
            out(f"  the laptop says it was removed: {laptop.removed}")
            out(f"  Bob's client encrypts to Alice's: {[d.name for d in listed.devices]}")
            out(f"  the laptop's last message: {laptop.messages('bob')[-1].body!r}")
            for client in clients:
                await client.close()
        return 0
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
