"""Both sides of approving a new device with a short authentication string (shared.pairing).

New device: :meth:`Pairing.offer` commits to a nonce; when an approver's ``Start`` arrives it
reveals the nonce and shows the code (``PairingCodeShown``). Approver: :meth:`Pairing.start`
sends its nonce, waits for the reveal, checks it against the commitment and the keys the relay
showed it, and returns the code. A code the user confirmed is remembered for a few minutes, and
only the keys it was computed over can be approved.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from client.core.events import Event, PairingCodeShown, PairingRejected
from client.core.link import RelayLink
from shared import pairing, wire
from shared.errors import ProtocolError

log = logging.getLogger("ariadne.client.pairing")

PAIRING_SECONDS = 300


@dataclass(frozen=True)
class Compared:
    keys: pairing.NewDeviceKeys
    code: str
    at: float
    commitment: bytes  # of the offer it answered: a new offer needs a new exchange


class Pairing:
    def __init__(
        self,
        link: RelayLink,
        emit: Callable[[Event], None],
        own_keys: Callable[[], pairing.NewDeviceKeys],
        on_approver: Callable[[pairing.ApproverKeys], None],
    ) -> None:
        self._link = link
        self._emit = emit
        self._own_keys = own_keys
        self._on_approver = on_approver
        self._offer_nonce: bytes | None = None
        self._starts: dict[bytes, tuple[wire.RegisteredDevice, pairing.ApproverKeys, bytes]] = {}
        self._reveals: dict[bytes, asyncio.Future[bytes]] = {}
        self._compared: dict[str, Compared] = {}
        self._running: dict[str, asyncio.Future[str]] = {}

    # ------------------------------------------------------------------ the new device

    async def offer(self) -> None:
        """Ask the account's devices to approve this one (a fresh nonce each time)."""
        self._offer_nonce = os.urandom(pairing.NONCE)
        commitment = pairing.commitment(self._offer_nonce, self._own_keys())
        await self._link.request(lambda rid: wire.OfferPairing(rid=rid, commitment=commitment))

    # ------------------------------------------------------------------ the approver

    async def start(
        self, device: wire.RegisteredDevice, approver: pairing.ApproverKeys, timeout: float = 30.0
    ) -> str:
        """Run the exchange with a pending device; returns the code to compare. One exchange per
        device at a time: a second caller (say, the approval dialog and a test) shares it, so the
        new device never shows a code other than the one shown here."""
        device_id = device.registration.device_id
        done = self._compared.get(device_id)
        if (
            done is not None
            and done.commitment == device.pairing_commitment
            and time.monotonic() - done.at <= PAIRING_SECONDS
        ):
            return done.code
        running = self._running.get(device_id)
        if running is None or running.done():
            running = asyncio.ensure_future(self._exchange(device, approver, timeout))
            self._running[device_id] = running
        return await asyncio.shield(running)

    async def _exchange(
        self, device: wire.RegisteredDevice, approver: pairing.ApproverKeys, timeout: float
    ) -> str:
        if device.pairing_commitment is None or device.identity_key is None:
            raise LookupError("that device has not asked to be approved (or its request expired)")
        session = os.urandom(16)
        nonce = os.urandom(pairing.NONCE)
        revealed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._reveals[session] = revealed
        self._starts[session] = (device, approver, nonce)
        message = pairing.encode(pairing.Start(session=session, approver=approver, nonce=nonce))
        try:
            await self._link.request(
                lambda rid: wire.PairingSend(
                    rid=rid, to_device=device.registration.device_id, payload=message
                )
            )
            async with asyncio.timeout(timeout):
                their_nonce = await revealed
        finally:
            self._reveals.pop(session, None)
            self._starts.pop(session, None)
        keys = pairing.NewDeviceKeys(
            device_id=device.registration.device_id,
            sign_public=device.registration.sign_public,
            storage_key=device.registration.storage_key,
            identity_key=device.identity_key,
        )
        pairing.check_commitment(device.pairing_commitment, their_nonce, keys)
        code = pairing.code(keys, approver, their_nonce, nonce)
        self._compared[keys.device_id] = Compared(
            keys, code, time.monotonic(), device.pairing_commitment
        )
        return code

    def compared(self, device_id: str) -> pairing.NewDeviceKeys | None:
        """The keys behind a code shown for ``device_id`` in the last few minutes."""
        done = self._compared.get(device_id)
        if done is None or time.monotonic() - done.at > PAIRING_SECONDS:
            return None
        return done.keys

    def forget(self, device_id: str) -> None:
        self._compared.pop(device_id, None)

    async def tell_rejected(self, device_id: str) -> None:
        message = pairing.encode(pairing.Outcome(session=bytes(16), approved=False))
        await self._link.request(
            lambda rid: wire.PairingSend(rid=rid, to_device=device_id, payload=message)
        )

    # ------------------------------------------------------------------ incoming

    def on_push(self, push: wire.PairingPush) -> None:
        try:
            message = pairing.decode(push.payload)
        except ProtocolError as exc:
            log.info("ignored a pairing message: %s", exc)
            return
        match message:
            case pairing.Start() if self._offer_nonce is not None:
                nonce = self._offer_nonce
                code = pairing.code(self._own_keys(), message.approver, nonce, message.nonce)
                self._on_approver(message.approver)
                reveal = pairing.encode(pairing.Reveal(session=message.session, nonce=nonce))
                self._send_later(push.from_device, reveal)
                self._emit(PairingCodeShown(push.from_device, code))
            case pairing.Reveal():
                waiter = self._reveals.get(message.session)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message.nonce)
            case pairing.Outcome(approved=False) if self._offer_nonce is not None:
                self._offer_nonce = None
                self._emit(PairingRejected(push.from_device))
            case _:
                log.info("ignored an unexpected pairing message")

    def _send_later(self, to_device: str, payload: bytes) -> None:
        async def send() -> None:
            try:
                await self._link.request(
                    lambda rid: wire.PairingSend(rid=rid, to_device=to_device, payload=payload)
                )
            except Exception as exc:  # the approver will time out and can start again
                log.info("could not answer a pairing request: %s", exc)

        task = asyncio.ensure_future(send())
        task.add_done_callback(lambda _: None)
