"""Verified device lists of users (PROTOCOL.md §2), as this device knows them.

The first list seen for a user pins that user's account master key (AMK); every later list must
be signed by the same key, must not go back in version, must chain to the one it replaces, and
must be made (and signed) by a device on the list this device holds, or by that list's recovery
code. A device (its id or its identity key) belongs to one account only: a list naming a device
that another user's verified list holds is refused, so no account can claim another's device and
have its messages shown under its own name. A list that fails any check is refused and the last
verified list stays in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from client.core.events import ContactKeyChanged, DeviceListChanged, DeviceListRefused, Event
from client.core.port import RelayPort
from client.core.profile import ProfileState
from client.core.storage import ProfileStore
from shared import wire
from shared.device_list import DeviceList, check_author, check_successor, open_device_list
from shared.errors import ProtocolError, VerificationError

log = logging.getLogger("ariadne.client.directory")


class UnknownUser(Exception):
    """The relay has no device list for this username."""


class Directory:
    def __init__(
        self,
        store: ProfileStore,
        link: RelayPort,
        emit: Callable[[Event], None],
        on_change: Callable[[DeviceList | None, DeviceList], None] | None = None,
        *,
        own_username: str,
        own_device: str,
    ) -> None:
        self._store = store
        self._state = ProfileState(store)
        self._own_username = own_username
        self._own_device = own_device
        self._link = link
        self._emit = emit
        self._on_change = on_change
        self._cache: dict[str, tuple[DeviceList, bytes]] = {}

    def known(self, username: str) -> DeviceList | None:
        """The last verified list, without asking the relay."""
        if username not in self._cache:
            stored = self._store.contact(username)
            if stored is None:
                return None
            amk_public, signed, _ = stored
            self._cache[username] = (open_device_list(signed, username, amk_public), signed)
        return self._cache[username][0]

    async def get(self, username: str) -> DeviceList:
        """The verified list, fetched from the relay only if this device has none yet."""
        return self.known(username) or await self.refresh(username)

    async def refresh(self, username: str) -> DeviceList:
        """Fetch the relay's current list and verify it against what this device already trusts.

        Returns the list in force afterwards: the new one if it verified, else the previous one
        (a :class:`DeviceListRefused` event says why). Raises :class:`UnknownUser` if there is no
        list at all."""
        current = self.known(username)
        # A device approved by pairing walks its account's lists from the first, to find the
        # one its approver made (see _first_own).
        since = current.version if current else (0 if self._approvers(username) else None)
        while True:

            def fetch(rid: int, s: int | None = since) -> wire.FetchDeviceList:
                return wire.FetchDeviceList(rid=rid, username=username, since=s)

            answer = await self._link.request(fetch, expect=wire.DeviceListReply)
            # The lists this device missed, each checked against the one before (its author
            # must be on it), then the current one.
            for signed in answer.between:
                if self.accept(username, signed) is None and self.known(username) is not None:
                    break
            current = self.known(username)
            if len(answer.between) < wire.MAX_LISTS_BETWEEN or since is None:
                break
            after = current.version if current else since + len(answer.between)
            if after == since:  # no progress
                break
            since = after
        if answer.signed_list is None:
            if current is None:
                raise UnknownUser(username)
            self._emit(DeviceListRefused(username, "the relay no longer serves a device list"))
            return current
        accepted = self.accept(username, answer.signed_list)
        if accepted is not None:
            return accepted
        if current is not None:
            return current
        raise UnknownUser(username)

    def accept(self, username: str, signed: bytes) -> DeviceList | None:
        """Verify and store ``signed`` if it may replace the current list; None if refused.

        A contact's list signed by a *new* account key is not refused outright: it is kept aside
        (``ContactKeyChanged``), sending to the contact pauses, and the user decides
        (:meth:`accept_key_change`). One's own account key never changes."""
        current = self.known(username)
        current_signed = self._cache[username][1] if current else None
        pinned = self._pinned_amk(username, current)
        if pinned is None and username == self._own_username:
            # A new device's own account key comes from the pairing code the user confirmed
            # (or the recovery code), never from whatever list the relay shows it first.
            log.info("not trusting a list of this device's own account before its key is known")
            return None
        try:
            new = open_device_list(signed, username, None)  # signed by the key it names
            self._check_devices_are_theirs(new)
            if pinned is not None and new.amk_public != pinned:
                if username != self._own_username:
                    self._hold_key_change(username, signed)
                    return None
                raise VerificationError("device list is signed by a different account key")
            approvers = self._approvers(username) if current is None else None
            if approvers is not None and not self._first_own(new, signed, approvers):
                return None
            if not check_successor(current, current_signed, new, signed):
                return current
        except ProtocolError as exc:
            log.warning("refused a device list for %s: %s", username, exc)
            self._emit(DeviceListRefused(username, str(exc)))
            return None
        with self._store.transaction():
            if self._on_change is not None:
                self._on_change(current, new)
            self._store.save_contact(username, new.amk_public, signed, new.version)
            self._store.set_contact_devices(
                username, ((d.device_id, d.identity_key) for d in new.devices)
            )
        self._cache[username] = (new, signed)
        before = current.device_ids if current else frozenset()
        self._emit(
            DeviceListChanged(
                username,
                new.version,
                tuple(sorted(new.device_ids - before)),
                tuple(sorted(before - new.device_ids)),
            )
        )
        return new

    def _approvers(self, username: str) -> frozenset[str] | None:
        """The devices whose pairing codes this (new) device confirmed, while it has no list of
        its own account yet."""
        return self._state.approvers if username == self._own_username else None

    def _first_own(self, new: DeviceList, signed: bytes, approvers: frozenset[str]) -> bool:
        """Is ``new`` the list that approved this device? A new device never saw its account's
        earlier lists, so it cannot judge their authors: a removed device that kept the account
        key could fork the list from one it was still on and add this device to the fork. So
        the first list is one that an approver whose code the user confirmed made (its keys are
        the ones the code covered: its id is derived from its key), naming this device; later
        ones follow by the author rule."""
        if new.author not in approvers or new.entry(self._own_device) is None:
            log.info("not taking a list of this account that its approver did not make")
            return False
        check_author(new, new, signed)  # signed by the approver's key, as the list names it
        return True

    def _check_devices_are_theirs(self, new: DeviceList) -> None:
        for device in new.devices:
            others = self._store.device_holders(device.device_id, device.identity_key)
            others.discard(new.username)
            if others:
                raise VerificationError(
                    f"device {device.device_id} of {new.username}'s list (or its identity key)"
                    f" is on {min(others)}'s device list"
                )

    def _hold_key_change(self, username: str, signed: bytes) -> None:
        if self._store.key_change(username) != signed:
            log.warning("the account key of %s changed; sending is paused", username)
            with self._store.transaction():
                self._store.set_key_change(username, signed)
            self._emit(ContactKeyChanged(username))

    def key_changed(self, username: str) -> bool:
        return self._store.key_change(username) is not None

    def accept_key_change(self, username: str) -> DeviceList:
        """The user acknowledged a contact's new account key: pin it, clear "verified"."""
        signed = self._store.key_change(username)
        if signed is None:
            raise LookupError(f"no key change pending for {username}")
        current = self.known(username)
        new = open_device_list(signed, username, None)
        self._check_devices_are_theirs(new)
        with self._store.transaction():
            if self._on_change is not None:
                self._on_change(current, new)
            self._store.save_contact(username, new.amk_public, signed, new.version)
            self._store.set_contact_devices(
                username, ((d.device_id, d.identity_key) for d in new.devices)
            )
            self._store.set_verified(username, False)
            self._store.set_key_change(username, None)
        self._cache[username] = (new, signed)
        return new

    def forget(self, username: str) -> None:
        """Drop what this device trusted for ``username`` (a pending device that learnt its
        account key from a pairing code drops the list the relay showed it at login)."""
        self._cache.pop(username, None)
        with self._store.transaction():
            self._store.forget_contact(username)

    def _pinned_amk(self, username: str, current: DeviceList | None) -> bytes | None:
        if current is not None:
            return current.amk_public
        own = self._state.pinned_account_public
        if username == self._own_username and own is not None:
            return own
        return None

    def signed(self, username: str) -> bytes | None:
        return self._cache[username][1] if self.known(username) else None
