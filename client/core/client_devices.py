"""The façade's calls about this account's devices and the trust in contacts' keys: whether this
device is a member, its role and fingerprint, pairing, approving, rejecting and removing devices,
the password, verified marks, key changes and safety numbers. A part of
:class:`client.core.client.AriadneClient`, which builds the concerns these calls go to
(:class:`~client.core.account.Account`, :class:`~client.core.devices.Devices`).
"""

from __future__ import annotations

import contextlib

from client.core.account import Account
from client.core.devices import Devices
from client.core.directory import UnknownUser
from client.core.history import History
from client.core.profile import DeviceRole
from shared import wire
from shared.device_list import DeviceList


class DeviceCalls:
    """Mixed into the façade, which builds the concerns below."""

    account: Account
    account_devices: Devices
    history: History

    @property
    def is_member(self) -> bool:
        """Whether this device is on its account's verified device list (else it is pending)."""
        return self.account.is_member

    @property
    def role(self) -> DeviceRole:
        return self.account.role

    @property
    def holds_account_key(self) -> bool:
        return self.account.key is not None

    def own_devices(self) -> DeviceList | None:
        return self.account_devices.own_devices()

    async def devices(self) -> list[wire.RegisteredDevice]:
        return await self.account_devices.registered()

    async def pending_devices(self) -> list[wire.RegisteredDevice]:
        return await self.account_devices.pending()

    async def confirm_pairing(self) -> None:
        self.account_devices.confirm_pairing()
        with contextlib.suppress(UnknownUser):
            await self.history.refresh_own()  # the approval may already be there

    @property
    def own_fingerprint(self) -> str:
        return self.account_devices.own_fingerprint

    async def offer_pairing(self) -> None:
        await self.account_devices.offer_pairing()

    async def pairing_code(self, device_id: str, timeout: float = 30.0) -> str:
        return await self.account_devices.pairing_code(device_id, timeout)

    async def approve_device(self, device_id: str) -> DeviceList:
        return await self.account_devices.approve(device_id)

    async def reject_device(self, device_id: str) -> None:
        await self.account_devices.reject(device_id)

    async def remove_device(self, device_id: str) -> DeviceList:
        return await self.account_devices.remove(device_id)

    async def change_password(self, password: str) -> None:
        await self.account_devices.change_password(password)

    def is_verified(self, peer: str) -> bool:
        return self.account_devices.is_verified(peer)

    def mark_verified(self, peer: str, verified: bool = True) -> None:
        self.account_devices.mark_verified(peer, verified)

    def key_changed(self, peer: str) -> bool:
        return self.account_devices.key_changed(peer)

    def acknowledge_key_change(self, peer: str) -> None:
        self.account_devices.acknowledge_key_change(peer)

    def safety_number(self, peer: str) -> str | None:
        return self.account_devices.safety_number(peer)
