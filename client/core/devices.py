"""This account's devices: this device's keys, the own device list, pairing, approval and
removal, the password, and the safety numbers of contacts.

:class:`Devices` publishes new own device lists (each with the epoch opened for it), runs both
sides of pairing, approves, rejects and removes devices, and keeps the verified marks. What this
device holds of its account (the account key, its role) is :class:`~client.core.account.Account`.
"""

from __future__ import annotations

import contextlib
import time

from client.core.account import Account
from client.core.context import ClientContext
from client.core.directory import Directory
from client.core.epochs import EpochBook, upload
from client.core.events import PairingRequested
from client.core.login import PRE_KEY_BATCH
from client.core.outbox import Outbox
from client.core.pairing import Pairing
from client.core.port import RelayError
from client.core.profile import Profile
from client.core.sessions import SessionBook
from shared import pairing, wire
from shared.device_list import (
    DeviceEntry,
    DeviceList,
    first_device_list,
    next_device_list,
    open_device_list,
)
from shared.epoch import EpochMember
from shared.identity import SigningKey
from shared.safety_number import safety_number
from shared.session import X3DHState, dump_x3dh_state


def pairing_keys(profile: Profile, x3dh: X3DHState) -> pairing.NewDeviceKeys:
    """This device's keys as a pairing exchange covers them."""
    return pairing.NewDeviceKeys(
        device_id=profile.device_id,
        sign_public=profile.sign_key.public,
        storage_key=profile.storage_key.public,
        identity_key=x3dh.bundle.identity_key,
    )


class Devices:
    def __init__(
        self,
        ctx: ClientContext,
        account: Account,
        directory: Directory,
        epochs: EpochBook,
        sessions: SessionBook,
        outbox: Outbox,
        pairing_: Pairing,
        x3dh: X3DHState,
    ) -> None:
        self._ctx = ctx
        self._account = account
        self._directory = directory
        self._epochs = epochs
        self._sessions = sessions
        self._outbox = outbox
        self._pairing = pairing_
        self._x3dh = x3dh

    # ------------------------------------------------------------------ this device's keys

    async def publish_keys(self, top_up: bool) -> None:
        """Give the relay this device's X3DH bundle (or, ``top_up``, a new batch of one-time
        pre-keys, stored here before their public halves leave)."""
        before = self._x3dh.bundle.pre_keys if top_up else frozenset()
        if top_up:
            async with self._ctx.store.transaction():
                self._x3dh.generate_pre_keys(PRE_KEY_BATCH)
                self._ctx.state.set_x3dh_state(dump_x3dh_state(self._x3dh))
        bundle = self._x3dh.bundle
        await self._ctx.port.request(
            lambda rid: wire.PublishKeys(
                rid=rid,
                identity_key=bundle.identity_key,
                signed_pre_key=bundle.signed_pre_key,
                signed_pre_key_sig=bundle.signed_pre_key_sig,
                one_time_pre_keys=sorted(bundle.pre_keys - before),
            ),
            expect=wire.Ok,
        )
        with self._ctx.store.transaction():
            self._ctx.state.set_keys_published()

    # ------------------------------------------------------------------ the own device list

    def own_entry(self) -> DeviceEntry:
        profile = self._ctx.profile
        return DeviceEntry(
            device_id=profile.device_id,
            name=profile.device_name,
            sign_public=profile.sign_key.public,
            identity_key=self._x3dh.bundle.identity_key,
            storage_key=profile.storage_key.public,
            added_at=int(time.time()),
        )

    def own_devices(self) -> DeviceList | None:
        return self._directory.known(self._ctx.username)

    def _full_key(self, action: str) -> SigningKey:
        key = self._account.key
        if key is None or not self._account.is_member:
            raise PermissionError(f"only a device holding the account key can {action}")
        return key

    async def publish_first_device_list(self) -> None:
        key = self._account.key
        if key is None:
            raise PermissionError("only the account's first device publishes its first list")
        profile = self._ctx.profile
        signed = first_device_list(key, profile.username, self.own_entry(), profile.sign_key)
        await self.publish_device_list(signed)

    async def publish_device_list(
        self, signed: bytes, virtual: list[EpochMember] | None = None
    ) -> DeviceList:
        """Publish a new own device list together with the epoch opened for it (its devices
        and virtual devices are the members), and take both into use."""
        key = self._account.key
        if key is None:
            raise PermissionError("only a device holding the account key publishes its list")
        username = self._ctx.username
        device_list = open_device_list(signed, username, key.public)
        epoch = self._epochs.next_epoch(key, device_list, signed, self._account.secrets(), virtual)
        await self._ctx.port.request(
            lambda rid: wire.PublishDeviceList(rid=rid, signed_list=signed, epoch=upload(epoch)),
            expect=wire.Ok,
        )
        accepted = self._directory.accept(username, signed)
        if accepted is None:  # our own list, signed by our own key: refused only if forged
            raise RelayError("refused", "this device's own new device list did not verify")
        self._epochs.opened(epoch)
        self._ctx.mailbox_wake.set()
        return accepted

    async def registered(self) -> list[wire.RegisteredDevice]:
        """Every device the relay knows for this account: members (with when they were last
        seen) and pending ones (with a fresh pairing request, if any)."""
        answer = await self._ctx.port.request(
            lambda rid: wire.ListDevices(rid=rid), expect=wire.Devices
        )
        return answer.devices

    async def pending(self) -> list[wire.RegisteredDevice]:
        return [d for d in await self.registered() if not d.member]

    # ------------------------------------------------------------------ pairing: the new device

    @property
    def own_fingerprint(self) -> str:
        """This device's keys as the approver sees them next to its request."""
        return pairing.fingerprint(pairing_keys(self._ctx.profile, self._x3dh))

    async def offer_pairing(self) -> None:
        """(New device) ask the account's other devices to approve this one. The code to
        compare arrives as a ``PairingCodeShown`` event when one of them starts."""
        if self._account.is_member:
            raise PermissionError("this device is already a member of its account")
        await self._pairing.offer()

    def confirm_pairing(self) -> None:
        """(New device) the user saw the same code on both screens: pin the account key of that
        exchange, and only of that one. Until then this device trusts no list of its own account
        (what the relay showed at login counts for nothing), so an unsolicited Start or a list
        signed by another key changes nothing."""
        approver = self._pairing.confirm()
        with self._ctx.store.transaction():
            self._ctx.state.pin_account_public(approver.amk_public)
            # Its first own list must be one that an approver whose code it confirmed makes
            # (Directory._first_own): this one, or one of an earlier exchange that still approves.
            self._ctx.state.add_approver(approver.device_id)

    # ------------------------------------------------------------------ pairing: the approver

    async def announce_pairing_offers(self) -> None:
        if self._account.key is None or not self._account.is_member:
            return
        for device in await self.pending():
            if device.pairing_commitment is not None and device.identity_key is not None:
                registration = device.registration
                keys = pairing.NewDeviceKeys(
                    device_id=registration.device_id,
                    sign_public=registration.sign_public,
                    storage_key=registration.storage_key,
                    identity_key=device.identity_key,
                )
                self._ctx.emit(
                    PairingRequested(
                        registration.device_id,
                        registration.name,
                        pairing.fingerprint(keys),
                        device.pairing_at or device.registered_at,
                    )
                )

    async def pairing_code(self, device_id: str, timeout: float = 30.0) -> str:
        """(Approver) run the pairing exchange with a pending device; returns the six-digit code
        the user compares with the one on the new device before approving."""
        key = self._full_key("approve devices")
        pending = {d.registration.device_id: d for d in await self.pending()}
        if device_id not in pending:
            raise LookupError("no such pending device")
        approver = pairing.ApproverKeys(
            device_id=self._ctx.device_id,
            sign_public=self._ctx.profile.sign_key.public,
            amk_public=key.public,
        )
        return await self._pairing.start(pending[device_id], approver, timeout)

    async def approve(self, device_id: str) -> DeviceList:
        """Add a pending device whose pairing code the user compared: publish the signed list
        with it and the epoch opened for it (its grant carries the root and, in the account box,
        the AMK), and tell the contacts."""
        key = self._account.key
        if key is None:
            raise PermissionError("only a device holding the account key can approve devices")
        keys = self._pairing.compared(device_id)
        if keys is None:
            raise PermissionError("compare the pairing code with the new device first")
        pending = {d.registration.device_id: d for d in await self.pending()}
        if device_id not in pending:
            raise LookupError("no such pending device")
        # The entry carries the keys the compared code covered, whatever the relay lists now.
        registration = pending[device_id].registration
        username = self._ctx.username
        current = await self._directory.refresh(username)
        signed = next_device_list(
            key,
            self._ctx.profile.sign_key,
            current,
            self._directory.signed(username) or b"",
            add=DeviceEntry(
                device_id=device_id,
                name=registration.name,
                sign_public=keys.sign_public,
                identity_key=keys.identity_key,
                storage_key=keys.storage_key,
                added_at=int(time.time()),
            ),
        )
        self._pairing.forget(device_id)
        accepted = await self.publish_device_list(signed)
        self._outbox.share_device_list(signed)
        return accepted

    async def reject(self, device_id: str) -> None:
        """Discard a pending device's request: it is told, and the relay forgets it."""
        self._pairing.forget(device_id)
        with contextlib.suppress(RelayError):
            await self._pairing.tell_rejected(device_id)
        await self._ctx.port.request(
            lambda rid: wire.RejectDevice(rid=rid, device_id=device_id), expect=wire.Ok
        )

    async def remove(self, device_id: str) -> DeviceList:
        """Revocation: a new signed list without the device and a new epoch whose entropy goes
        only to the remaining devices (and the recovery code's virtual device). The relay drops
        the device's credentials, queue and pre-keys; contacts get the new list end to end."""
        key = self._account.key
        if key is None:
            raise PermissionError("only a device holding the account key can remove devices")
        if device_id == self._ctx.device_id:
            raise ValueError("remove this device from another one")
        username = self._ctx.username
        current = await self._directory.refresh(username)
        if current.entry(device_id) is None:
            raise LookupError("that device is not on the account's device list")
        signed = next_device_list(
            key,
            self._ctx.profile.sign_key,
            current,
            self._directory.signed(username) or b"",
            remove=device_id,
        )
        accepted = await self.publish_device_list(signed)
        self._sessions.forget((username, device_id))
        self._outbox.share_device_list(signed)
        return accepted

    async def change_password(self, password: str) -> None:
        """Set the account's new password (a member device only). Every login made with the old
        one ends: the relay forgets the account's pending devices and closes their connections,
        and the old password registers nothing any more. Offered with removing a device, which
        may know the password."""
        if not wire.MIN_PASSWORD <= len(password) <= wire.MAX_PASSWORD:
            raise ValueError(
                f"a password has {wire.MIN_PASSWORD} to {wire.MAX_PASSWORD} characters"
            )
        await self._ctx.port.request(
            lambda rid: wire.ChangePassword(rid=rid, password=password), expect=wire.Ok
        )

    # ------------------------------------------------------------------ safety numbers

    def is_verified(self, peer: str) -> bool:
        return self._ctx.store.verified(peer)

    def mark_verified(self, peer: str, verified: bool = True) -> None:
        """The user compared the safety number with ``peer`` (digits or QR code)."""
        if self._directory.known(peer) is None:
            raise LookupError(f"no verified device list for {peer} yet")
        with self._ctx.store.transaction():
            self._ctx.store.set_verified(peer, verified)

    def key_changed(self, peer: str) -> bool:
        """``peer``'s account key changed and the user has not acknowledged it yet."""
        return self._directory.key_changed(peer)

    def acknowledge_key_change(self, peer: str) -> None:
        """Accept ``peer``'s new account key: sending resumes; the verified mark is cleared."""
        self._directory.accept_key_change(peer)
        self._ctx.outbox_wake.set()

    def safety_number(self, peer: str) -> str | None:
        """The 60-digit number both users see for their pair of account keys (None until this
        device has verified the peer's device list)."""
        theirs = self._directory.known(peer)
        mine = self._directory.known(self._ctx.username)
        if theirs is None or mine is None:
            return None
        return safety_number(self._ctx.username, mine.amk_public, peer, theirs.amk_public)
