"""Both sides of approving a new device with a short authentication string (shared.pairing).

New device: :meth:`Pairing.offer` commits to its keys and a fresh nonce; the first approver's
``Start`` for that offer gets the nonce revealed and the code shown (``PairingCodeShown``), and
spends the offer: any later ``Start`` gets nothing until the user asks again (a new offer). The
account key is taken only from the exchange whose code the user confirmed (:meth:`confirm`).
Approver: :meth:`Pairing.start` sends its nonce, waits for the reveal from that device, checks it
against the commitment and the keys the relay showed it, and returns the code. A compared code is
remembered for a few minutes, and only the keys it was computed over can be approved.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from client.core.events import Event, PairingCodeShown, PairingRejected
from client.core.port import RelayPort
from shared import pairing, wire
from shared.errors import ProtocolError

log = logging.getLogger("ariadne.client.pairing")

PAIRING_SECONDS = 300


@dataclass(frozen=True)
class Offer:
    """This (new) device's current request: what it committed to, and whether it was spent."""

    nonce: bytes
    at: float  # wall-clock seconds, shown as "asked … ago"
    spent: bool = False


@dataclass(frozen=True)
class Shown:
    """The one exchange this device answered for its current offer: the code on its screen."""

    approver_device: str
    approver: pairing.ApproverKeys
    code: str
    at: float


@dataclass(frozen=True)
class Compared:
    keys: pairing.NewDeviceKeys
    code: str
    at: float
    commitment: bytes  # of the offer it answered: a new offer needs a new exchange


class Pairing:
    def __init__(
        self,
        link: RelayPort,
        emit: Callable[[Event], None],
        own_keys: Callable[[], pairing.NewDeviceKeys],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._link = link
        self._emit = emit
        self._own_keys = own_keys
        self.clock = clock  # how old a compared or shown code is (tests move it forward)
        self.offered: Offer | None = None
        self.shown: Shown | None = None
        self._reveals: dict[bytes, tuple[str, asyncio.Future[bytes]]] = {}
        self._compared: dict[str, Compared] = {}
        self._running: dict[str, asyncio.Future[str]] = {}

    # ------------------------------------------------------------------ the new device

    async def offer(self) -> None:
        """Ask the account's devices to approve this one: a fresh nonce and commitment each time,
        and any code shown for an earlier offer is void."""
        nonce = os.urandom(pairing.NONCE)
        self.offered = Offer(nonce, time.time())
        self.shown = None
        commitment = pairing.commitment(nonce, self._own_keys())
        await self._link.request(
            lambda rid: wire.OfferPairing(rid=rid, commitment=commitment), expect=wire.Ok
        )

    def confirm(self) -> pairing.ApproverKeys:
        """The user saw the same code on both screens: the approver keys of that exchange (the
        account key to pin). Only the exchange shown, and only while it is fresh."""
        shown = self.shown
        if shown is None:
            raise LookupError("no pairing code is shown: ask your other device to approve again")
        if self.clock() - shown.at > PAIRING_SECONDS:
            self.shown = None
            raise LookupError("that pairing code expired: ask again")
        self.shown = None
        return shown.approver

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
            and self.clock() - done.at <= PAIRING_SECONDS
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
        self._reveals[session] = (device.registration.device_id, revealed)
        message = pairing.encode(pairing.Start(session=session, approver=approver, nonce=nonce))
        try:
            await self._link.request(
                lambda rid: wire.PairingSend(
                    rid=rid, to_device=device.registration.device_id, payload=message
                ),
                expect=wire.Ok,
            )
            async with asyncio.timeout(timeout):
                their_nonce = await revealed
        finally:
            self._reveals.pop(session, None)
        keys = pairing.NewDeviceKeys(
            device_id=device.registration.device_id,
            sign_public=device.registration.sign_public,
            storage_key=device.registration.storage_key,
            identity_key=device.identity_key,
        )
        pairing.check_commitment(device.pairing_commitment, their_nonce, keys)
        code = pairing.code(keys, approver, their_nonce, nonce)
        self._compared[keys.device_id] = Compared(
            keys, code, self.clock(), device.pairing_commitment
        )
        return code

    def compared(self, device_id: str) -> pairing.NewDeviceKeys | None:
        """The keys behind a code shown for ``device_id`` in the last few minutes."""
        done = self._compared.get(device_id)
        if done is None or self.clock() - done.at > PAIRING_SECONDS:
            return None
        return done.keys

    def forget(self, device_id: str) -> None:
        self._compared.pop(device_id, None)

    async def tell_rejected(self, device_id: str) -> None:
        message = pairing.encode(pairing.Outcome(session=bytes(16), approved=False))
        await self._link.request(
            lambda rid: wire.PairingSend(rid=rid, to_device=device_id, payload=message),
            expect=wire.Ok,
        )

    # ------------------------------------------------------------------ incoming

    def on_push(self, push: wire.PairingPush) -> None:
        try:
            message = pairing.decode(push.payload)
        except ProtocolError as exc:
            log.info("ignored a pairing message: %s", exc)
            return
        match message:
            case pairing.Start():
                self._answer(push.from_device, message)
            case pairing.Reveal():
                expected = self._reveals.get(message.session)
                # Only the device this exchange was started with can answer it.
                if expected is not None and expected[0] == push.from_device:
                    waiter = expected[1]
                    if not waiter.done():
                        waiter.set_result(message.nonce)
                else:
                    log.info("ignored a reveal for no exchange of this device")
            case pairing.Outcome(approved=False) if self.offered is not None:
                self.offered = self.shown = None
                self._emit(PairingRejected(push.from_device))
            case _:
                log.info("ignored an unexpected pairing message")

    def _answer(self, from_device: str, start: pairing.Start) -> None:
        """Reveal this offer's nonce to the first approver, once: a second Start (an honest
        second approver, or a relay that learnt the nonce from a dummy Start and now grinds its
        own) gets nothing."""
        offer = self.offered
        if offer is None or offer.spent:
            log.info("ignored a pairing start: no open request (ask again for a new one)")
            return
        if start.approver.device_id != from_device:
            log.info("ignored a pairing start naming another device than its sender")
            return
        self.offered = Offer(offer.nonce, offer.at, spent=True)
        code = pairing.code(self._own_keys(), start.approver, offer.nonce, start.nonce)
        self.shown = Shown(from_device, start.approver, code, self.clock())
        reveal = pairing.encode(pairing.Reveal(session=start.session, nonce=offer.nonce))
        self._send_later(from_device, reveal)
        self._emit(PairingCodeShown(from_device, code))

    def _send_later(self, to_device: str, payload: bytes) -> None:
        async def send() -> None:
            try:
                await self._link.request(
                    lambda rid: wire.PairingSend(rid=rid, to_device=to_device, payload=payload),
                    expect=wire.Ok,
                )
            except Exception as exc:  # the approver will time out and can start again
                log.info("could not answer a pairing request: %s", exc)

        task = asyncio.ensure_future(send())
        task.add_done_callback(lambda _: None)
