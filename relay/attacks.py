"""The attack layer: the real relay, misbehaving on cue, for the hostile-relay demo and its tests.

Switched on only by ``ariadne-relay --attack-layer`` (or by a test building :class:`AttackLayer`
around an in-process relay); a relay without it has none of this on its path. When on, it says so
loudly in the log. It never weakens what the relay checks: it acts like an attacker who owns the
relay's process and database, wrapping this relay's own handlers (``Relay.handlers``, a copy for
this relay only) and its delivery (``Relay.deliver``), and editing the queue through the store's
own methods.

Each command arms one attack against a victim's traffic; the attack acts on the next matching
request or envelope and reports what it did (``shared.operator``). What the clients do about it
is theirs to show: the layer only attacks.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from relay.session import Handler, Session
from relay.store import QueuedEnvelope
from shared import pairing, wire
from shared.device_list import DeviceEntry, DeviceList, SignedDeviceList
from shared.envelope import decode_sealed
from shared.errors import WireError
from shared.identity import SigningKey, device_id_for
from shared.operator import Attack, OperatorCommand, OperatorReport, Stage, decode_command

if TYPE_CHECKING:
    from relay.server import Relay

log = logging.getLogger("ariadne.relay.attacks")

BANNER = "ATTACK LAYER ON: this relay misbehaves on its operator's command (demo and tests only)"

# Attacks that act on envelopes from ``sender`` to the victim's devices.
DELIVERY_ATTACKS = frozenset({"read", "flip", "replay", "relabel", "withhold", "reorder"})


@dataclass
class Armed:
    command: OperatorCommand
    held: list[QueuedEnvelope] = field(default_factory=list)  # withhold, reorder: off the queue
    passed: list[QueuedEnvelope] = field(default_factory=list)  # replay: delivered, copied on ack
    replayed: set[int] = field(default_factory=set)  # replay: the copies' seqs, until acked
    fan_out: tuple[str, int] | None = None  # the message it took: (sender device, relay time)
    fired: bool = False


class AttackLayer:
    """Wraps one relay. ``report`` gets every :class:`OperatorReport` (the operator channel
    writes them to standard output; a test collects them)."""

    def __init__(self, relay: Relay, report: Callable[[OperatorReport], None]) -> None:
        self.relay = relay
        self.report = report
        self.armed: dict[Attack, Armed] = {}
        self._relay_key = SigningKey.generate()  # the relay's own keys, for what it forges
        self._relay_amk = SigningKey.generate()
        self._honest_deliver = relay.deliver
        handlers = dict(relay.handlers)
        self._honest: dict[type, Handler] = handlers.copy()
        handlers[wire.FetchDeviceList] = self._fetch_device_list
        handlers[wire.FetchEpochs] = self._fetch_epochs
        handlers[wire.PairingSend] = self._pairing_send
        handlers[wire.Ack] = self._ack
        relay.handlers = handlers
        relay.deliver = self._deliver  # type: ignore[method-assign]
        for line in ("!" * len(BANNER), BANNER, "!" * len(BANNER)):
            log.warning(line)

    # ------------------------------------------------------------------ commands

    def command(self, command: OperatorCommand) -> None:
        attack = command.attack
        if attack == "stop":
            for armed in self.armed.values():
                self._put_back(armed.held, retime=False)
            self.armed.clear()
            self._say(command, "done", "every attack disarmed; held messages given back")
            return
        if attack == "release":
            withheld = self.armed.pop("withhold", None)
            if withheld is None or not withheld.held:
                self._say(command, "refused", "nothing is held")
                return
            count = len(withheld.held)
            self._put_back(withheld.held, retime=False)
            self._say(command, "done", f"gave back {count} held envelope(s)")
            return
        if attack in DELIVERY_ATTACKS and command.sender is None:
            self._say(command, "refused", "a delivery attack needs a sender")
            return
        if attack == "rollback" and self._older_list(command.victim) is None:
            self._say(command, "refused", f"{command.victim}'s device list has no older version")
            return
        self.armed[attack] = Armed(command)
        self._say(command, "armed", _ARMED[attack].format(c=command))
        if attack in ("ghost", "rollback"):
            # Tell every other user's connected devices that the victim's list changed: they
            # fetch it, and get the relay's version.
            notice = wire.Notice(kind="device_list_changed", username=command.victim)
            for device_id, connection in list(self.relay.connections.items()):
                if connection.session is not None and connection.session.username != command.victim:
                    self.relay.push_to(device_id, notice)

    def _say(self, command: OperatorCommand, stage: Stage, detail: str, data: bytes = b"") -> None:
        log.warning("attack %s %s: %s", command.attack, stage, detail)
        self.report(
            OperatorReport(attack=command.attack, stage=stage, detail=detail, ciphertext=data)
        )

    def _fire(self, armed: Armed, detail: str, data: bytes = b"") -> None:
        armed.fired = True
        self._say(armed.command, "done", detail, data)

    # ------------------------------------------------------------------ delivery attacks

    def _target(self, envelope: QueuedEnvelope) -> list[Armed]:
        if not self.armed:
            return []
        recipient = self.relay.store.device(envelope.device_id)
        return [
            armed
            for attack, armed in self.armed.items()
            if attack in DELIVERY_ATTACKS
            and recipient is not None
            and recipient.username == armed.command.victim
            and envelope.sender_user == armed.command.sender
        ]

    def _deliver(self, envelope: QueuedEnvelope) -> None:
        for armed in self._target(envelope):
            # An attack takes one message: the whole fan-out (one envelope per device of the
            # victim's), known by its sender's device and time.
            fan_out = (envelope.sender_device, envelope.server_ts)
            if armed.fan_out is None:
                armed.fan_out = fan_out
            attack = armed.command.attack
            if attack == "reorder" and fan_out != armed.fan_out:
                self._honest_deliver(envelope)
                # The first message goes after the second, timed as if it came in last.
                held = [e for e in armed.held if e.device_id == envelope.device_id]
                armed.held = [e for e in armed.held if e.device_id != envelope.device_id]
                self._put_back(held, retime=True)
                if not armed.fired:
                    self._fire(
                        armed,
                        f"delivered {armed.command.sender}'s second message first and the"
                        " first after it, with a later time",
                    )
                if not armed.held:
                    del self.armed["reorder"]
                return
            if fan_out != armed.fan_out:
                continue
            if attack == "read":
                self._fire(
                    armed,
                    f"copied the {len(envelope.payload)}-byte envelope from"
                    f" {envelope.sender_user} to device {envelope.device_id}",
                    decode_sealed(envelope.payload).ciphertext,
                )
                del self.armed["read"]
            elif attack == "flip":
                # One bit in the middle of the ciphertext: the envelope still parses, so only
                # the authentication of the message can catch it.
                data = bytearray(envelope.payload)
                ciphertext = decode_sealed(envelope.payload).ciphertext
                data[envelope.payload.index(ciphertext) + len(ciphertext) // 2] ^= 0x20
                envelope = self._replace(envelope, payload=bytes(data))
                self._once(armed, f"flipped one bit of {armed.command.sender}'s message")
            elif attack == "relabel":
                as_user = armed.command.as_user or "mallory"
                devices = self.relay.store.devices_of(as_user)
                as_device = (
                    devices[0].device_id if devices else device_id_for(self._relay_key.public)
                )
                envelope = self._replace(envelope, sender_user=as_user, sender_device=as_device)
                self._once(
                    armed,
                    f"delivered {armed.command.sender}'s message labelled as sent by {as_user}",
                )
            elif attack == "replay":
                armed.passed.append(envelope)  # let through; copied once acknowledged
            elif attack in ("withhold", "reorder"):
                self.relay.store.acknowledge(envelope.device_id, [envelope.seq])
                armed.held.append(envelope)
                if attack == "withhold":
                    self._once(armed, f"holding {armed.command.sender}'s message")
                return
        self._honest_deliver(envelope)

    def _once(self, armed: Armed, detail: str) -> None:
        if not armed.fired:
            self._fire(armed, detail)

    def _replace(self, envelope: QueuedEnvelope, **changes: object) -> QueuedEnvelope:
        """The queued envelope swapped for an edited one (the queue is the relay's to edit)."""
        store = self.relay.store
        store.acknowledge(envelope.device_id, [envelope.seq])
        edited = envelope._replace(**changes)  # type: ignore[arg-type]
        (queued,) = store.enqueue([edited[1:]])
        store.durable()
        return queued

    def _put_back(self, held: list[QueuedEnvelope], retime: bool) -> None:
        store = self.relay.store
        for envelope in held:
            ts = self.relay.next_timestamp() if retime else envelope.server_ts
            (queued,) = store.enqueue([envelope._replace(server_ts=ts)[1:]])
            self._honest_deliver(queued)
        held.clear()
        store.durable()

    async def _ack(self, session: Session, frame: wire.Ack) -> wire.Frame | None:
        reply = await self._honest[wire.Ack](session, frame)
        armed = self.armed.get("replay")
        if armed is None:
            return reply
        acked = set(frame.seqs)
        if armed.replayed & acked:
            armed.replayed -= acked
            self._once(armed, f"delivered {armed.command.sender}'s message a second time")
            if not armed.replayed and not armed.passed:
                del self.armed["replay"]
            return reply
        for envelope in [e for e in armed.passed if e.seq in acked]:
            armed.passed.remove(envelope)
            (copy,) = self.relay.store.enqueue([envelope[1:]])
            self.relay.store.durable()
            armed.replayed.add(copy.seq)
            self._honest_deliver(copy)
        return reply

    # ------------------------------------------------------------------ lists, epochs, pairing

    def _older_list(self, username: str) -> bytes | None:
        stored = self.relay.store.device_list(username)
        if stored is None or stored[0] < 2:
            return None
        older = self.relay.store.device_lists_between(username, stored[0] - 2, stored[0], 1)
        return older[0] if older else None

    async def _fetch_device_list(
        self, session: Session, frame: wire.FetchDeviceList
    ) -> wire.Frame | None:
        listed: tuple[Attack, ...] = ("ghost", "rollback")
        for attack in listed:
            armed = self.armed.get(attack)
            if (
                armed is None
                or frame.username != armed.command.victim
                or session.username == armed.command.victim
            ):
                continue
            del self.armed[attack]
            if attack == "ghost":
                signed, detail = self._with_ghost(frame.username)
            else:
                signed, detail = self._older_list(frame.username), "an older version"
            if signed is None:
                break
            self._fire(armed, f"served {session.username} {frame.username}'s list with {detail}")
            return wire.DeviceListReply(rid=frame.rid, signed_list=signed, between=[])
        return await self._honest[wire.FetchDeviceList](session, frame)

    def _with_ghost(self, username: str) -> tuple[bytes | None, str]:
        """The genuine list with one more device of the relay's, and a version up, under the
        genuine signatures (the relay has no account key to sign it again)."""
        stored = self.relay.store.device_list(username)
        if stored is None:
            return None, ""
        genuine = msgspec.msgpack.decode(stored[1], type=SignedDeviceList)
        body = msgspec.msgpack.decode(genuine.body, type=DeviceList)
        ghost = DeviceEntry(
            device_id=device_id_for(self._relay_key.public),
            name=f"{username}'s new phone",
            sign_public=self._relay_key.public,
            identity_key=os.urandom(32),
            storage_key=os.urandom(32),
            added_at=0,
        )
        forged = msgspec.structs.replace(
            body, version=body.version + 1, devices=(*body.devices, ghost)
        )
        signed = msgspec.structs.replace(genuine, body=msgspec.msgpack.encode(forged))
        return msgspec.msgpack.encode(signed), f"a ghost device {ghost.device_id} added"

    async def _fetch_epochs(self, session: Session, frame: wire.FetchEpochs) -> wire.Frame | None:
        reply = await self._honest[wire.FetchEpochs](session, frame)
        armed = self.armed.get("hide_epoch")
        if (
            armed is None
            or session.username != armed.command.victim
            or session.is_member
            or not isinstance(reply, wire.Epochs)
            or not reply.epochs
        ):
            return reply
        if not armed.fired:
            self._fire(
                armed,
                f"hid the newest of {len(reply.epochs)} epochs from restoring device"
                f" {session.device_id}",
            )
        return msgspec.structs.replace(reply, epochs=reply.epochs[:-1])

    async def _pairing_send(self, session: Session, frame: wire.PairingSend) -> wire.Frame | None:
        armed = self.armed.get("pairing")
        if armed is not None and session.username == armed.command.victim and session.is_member:
            try:
                message = pairing.decode(frame.payload)
            except WireError:
                message = None
            if isinstance(message, pairing.Start):
                # In the middle: the new device gets the relay's keys and nonce in place of
                # the approver's, so that the relay's account key would be the one it trusts.
                own = pairing.Start(
                    session=message.session,
                    approver=pairing.ApproverKeys(
                        device_id=session.device_id,
                        sign_public=self._relay_key.public,
                        amk_public=self._relay_amk.public,
                    ),
                    nonce=os.urandom(pairing.NONCE),
                )
                frame = msgspec.structs.replace(frame, payload=pairing.encode(own))
                del self.armed["pairing"]
                self._fire(
                    armed,
                    f"replaced {session.device_id}'s keys and nonce with the relay's in the"
                    f" pairing of {frame.to_device}",
                )
        return await self._honest[wire.PairingSend](session, frame)


_ARMED: dict[str, str] = {
    "read": "will copy the next message from {c.sender} to {c.victim}",
    "flip": "will flip a bit in the next message from {c.sender} to {c.victim}",
    "replay": "will deliver the next message from {c.sender} to {c.victim} twice",
    "relabel": "will label the next message from {c.sender} to {c.victim} as {c.as_user}'s",
    "ghost": "will add a device of its own to {c.victim}'s device list",
    "rollback": "will serve an older version of {c.victim}'s device list",
    "hide_epoch": "will hide {c.victim}'s newest epoch from a device restoring it",
    "pairing": "will put its own keys in the next pairing of a device of {c.victim}",
    "withhold": "will hold the next message from {c.sender} to {c.victim}",
    "reorder": "will swap the next two messages from {c.sender} to {c.victim}",
}


async def serve_operator(layer: AttackLayer, reader: asyncio.StreamReader) -> None:
    """Read commands, one JSON line each, until the pipe closes. A bad line is refused and
    reported; it stops nothing."""
    while line := await reader.readline():
        try:
            command = decode_command(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("operator command refused: %s", exc)
            continue
        layer.command(command)
