"""Group benchmark: one message to a group of 50 users with 3 devices each (150 devices: the
sender's device encrypts for the other 149), sent with Sender Keys against pairwise fan-out to the
same devices, measured in the same run.

    python tests/benchmarks/bench_groups.py [--messages 30] [--users 50] [--devices 3]

- **Client CPU per message** (process time): everything the sender's device computes for one
  message — the payload, the encryption (one sender-key step and signature; or one Double Ratchet
  step per device), the states it must store before sending (one sender key; or every ratchet),
  and the frames it uploads, encoded.
- **Bytes uploaded per message**: the encoded frames (one ``GroupSend``; or one ``Send`` per 8
  users, the relay's limit per fan-out).
- **Relay throughput**: the real relay's handlers, store and group commit in this process (no
  websocket, so this is the relay's own work): messages per second it accepts and queues for all
  150 devices, ``GroupSend`` against the pairwise ``Send`` frames of the same message.

Ratios, not absolute numbers, are what compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from relay.handlers import HANDLERS
from relay.limits import Limits
from relay.server import Relay
from relay.store import RelayStore
from shared import sender_keys, wire
from shared.envelope import Origin, Text, encode_payload, encode_sealed, new_message_id
from shared.group import GroupText, encode_message
from shared.session import Session, accept_session, initiate_session, new_x3dh_state
from tests.relay.conftest import Device, Kit

BODY = "Who is in for the crag on Saturday? I can drive, three seats free."


async def sessions_to(count: int) -> list[Session]:
    """``count`` established Double Ratchet sessions from the sender (each answered once, as
    in a conversation that is going)."""
    own = new_x3dh_state()
    sessions = []
    for i in range(count):
        peer = new_x3dh_state()
        bundle = peer.bundle
        binding = f"s-{i}".encode()
        session, first = await initiate_session(
            own,
            bundle.identity_key,
            bundle.signed_pre_key,
            bundle.signed_pre_key_sig,
            None,
            binding,
            b"hello",
        )
        theirs, _ = await accept_session(peer, first, binding)
        await session.decrypt(await theirs.encrypt(b"hi"))
        sessions.append(session)
    return sessions


def recipients(users: list[str], devices: dict[str, list[str]]) -> list[wire.GroupRecipient]:
    return [wire.GroupRecipient(username=u, device_ids=devices[u]) for u in users]


async def pairwise_message(
    sessions: list[Session], targets: list[tuple[str, str]], counter: int
) -> list[bytes]:
    """The frames one pairwise message costs the sender."""
    payload = encode_payload(
        Text(
            origin=Origin(user="u000", device="0" * 16, counter=counter),
            message_id=new_message_id(),
            peer="u001",
            sent_at=0,
            body=BODY,
        )
    )
    by_user: dict[str, list[wire.Envelope]] = {}
    for session, (user, device) in zip(sessions, targets, strict=True):
        sealed = await session.encrypt(payload)
        session.dump()  # the ratchet is stored before anything leaves
        envelope = wire.Envelope(device_id=device, payload=encode_sealed(sealed))
        by_user.setdefault(user, []).append(envelope)
    users = list(by_user)
    frames = []
    for start in range(0, len(users), wire.MAX_RECIPIENT_USERS):
        chunk = users[start : start + wire.MAX_RECIPIENT_USERS]
        frames.append(
            wire.encode(
                wire.Send(
                    rid=counter,
                    send_id=new_message_id(),
                    recipients=[
                        wire.RecipientEnvelopes(username=u, envelopes=by_user[u]) for u in chunk
                    ],
                )
            )
        )
    return frames


def group_message(
    key: sender_keys.OwnSenderKey, group: list[wire.GroupRecipient], counter: int
) -> tuple[bytes, sender_keys.OwnSenderKey]:
    text = GroupText(
        origin=Origin(user="u000", device="0" * 16, counter=counter),
        message_id=new_message_id(),
        sent_at=0,
        body=BODY,
        seq=1,
        head=bytes(32),
    )
    sealed, key = sender_keys.encrypt(key, "u000", "0" * 16, encode_message(text))
    sender_keys.encode_state(key)  # the sender key is stored before anything leaves
    frame = wire.GroupSend(rid=counter, send_id=new_message_id(), payload=sealed, recipients=group)
    return wire.encode(frame), key


async def client_side(users: int, per_user: int, messages: int) -> dict[str, float]:
    names = [f"u{i:03d}" for i in range(users)]
    devices = {u: [f"{i:04x}{j:012x}" for j in range(per_user)] for i, u in enumerate(names)}
    devices[names[0]] = devices[names[0]][1:]  # the sender's own other devices
    targets = [(u, d) for u in names for d in devices[u]]
    sessions = await sessions_to(len(targets))
    group = recipients(names, devices)
    key = sender_keys.new_sender_key(bytes(16))
    pairwise_cpu, group_cpu, pairwise_bytes, group_bytes = [], [], 0, 0
    for n in range(messages):
        start = time.process_time()
        frames = await pairwise_message(sessions, targets, n + 1)
        pairwise_cpu.append(time.process_time() - start)
        pairwise_bytes = sum(len(f) for f in frames)
        start = time.process_time()
        frame, key = group_message(key, group, n + 1)
        group_cpu.append(time.process_time() - start)
        group_bytes = len(frame)
    return {
        "devices": len(targets),
        "pairwise_cpu": statistics.median(pairwise_cpu),
        "group_cpu": statistics.median(group_cpu),
        "pairwise_bytes": pairwise_bytes,
        "group_bytes": group_bytes,
    }


async def relay_side(users: int, per_user: int, messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        relay = Relay(RelayStore(Path(folder) / "relay.sqlite3"), Limits())
        kit = Kit(relay)
        accounts: dict[str, list[Device]] = {}
        for i in range(users):
            first = await kit.create(f"u{i:03d}")
            accounts[first.username] = [first]
            for _ in range(per_user - 1):
                extra = await kit.pending(first.username)
                await kit.approve(first, extra)
                accounts[first.username].append(extra)
        sender = accounts["u000"][0]
        payload = bytes(400)  # about one padded envelope (or group message) of a short text
        devices = {u: [d.device_id for d in ds if d is not sender] for u, ds in accounts.items()}
        names = list(accounts)

        async def one_group(n: int) -> None:
            frame = wire.GroupSend(
                rid=n,
                send_id=new_message_id(),
                payload=payload,
                recipients=recipients(names, devices),
            )
            await HANDLERS[wire.GroupSend](sender.session, frame)

        async def one_pairwise(n: int) -> None:
            for start in range(0, len(names), wire.MAX_RECIPIENT_USERS):
                chunk = names[start : start + wire.MAX_RECIPIENT_USERS]
                frame = wire.Send(
                    rid=n,
                    send_id=new_message_id(),
                    recipients=[
                        wire.RecipientEnvelopes(
                            username=u,
                            envelopes=[
                                wire.Envelope(device_id=d, payload=payload) for d in devices[u]
                            ],
                        )
                        for u in chunk
                    ],
                )
                await HANDLERS[wire.Send](sender.session, frame)

        rates = {}
        for name, one in (("pairwise", one_pairwise), ("group", one_group)):
            start = time.perf_counter()
            for n in range(messages):
                await one(n)
                await relay.store.durable()
            rates[name] = messages / (time.perf_counter() - start)
            relay.store._db.execute("DELETE FROM queue")  # the devices acknowledged everything
            relay.store._db.commit()
        relay.close()
        return {"pairwise_rate": rates["pairwise"], "group_rate": rates["group"]}


async def main(messages: int, users: int, per_user: int) -> None:
    client = await client_side(users, per_user, messages)
    print(f"group: {users} users x {per_user} devices; {client['devices']} devices to reach")
    print(
        f"client CPU per message: pairwise {client['pairwise_cpu'] * 1000:.1f} ms,"
        f" sender keys {client['group_cpu'] * 1000:.2f} ms"
        f" -> {client['pairwise_cpu'] / client['group_cpu']:.0f}x less with sender keys"
    )
    print(
        f"bytes uploaded per message: pairwise {client['pairwise_bytes']:,},"
        f" sender keys {client['group_bytes']:,}"
        f" -> {client['pairwise_bytes'] / client['group_bytes']:.1f}x fewer with sender keys"
    )
    relay = await relay_side(users, per_user, messages)
    print(
        f"relay throughput (messages to all {client['devices']} devices per second):"
        f" pairwise {relay['pairwise_rate']:.1f}, sender keys {relay['group_rate']:.1f}"
        f" -> {relay['group_rate'] / relay['pairwise_rate']:.1f}x with sender keys"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--devices", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.users, args.devices))
