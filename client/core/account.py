"""What this device holds of its account: the account key once it has it (made with the first
device, opened from an epoch's account box, or from a recovery code) and the device's role
(:mod:`~client.core.profile`).

It also turns a verified change of any device list into this device's new role and the system
lines the user sees. The directory and the epoch book are wired to it when the engine is built,
so they report here, not to the façade.
"""

from __future__ import annotations

from client.core.context import ClientContext
from client.core.directory import Directory
from client.core.events import DeviceRemoved
from client.core.profile import DeviceRole, next_role
from client.core.timeline import Timeline
from shared.device_list import DeviceList
from shared.epoch import AccountSecrets
from shared.identity import SigningKey


class Account:
    """The account key this device holds (None until it has it) and its role in the account."""

    def __init__(self, ctx: ClientContext, timeline: Timeline) -> None:
        self._ctx = ctx
        self._timeline = timeline
        self.key: SigningKey | None = ctx.state.account_key

    @property
    def role(self) -> DeviceRole:
        return self._ctx.state.role

    @property
    def is_member(self) -> bool:
        """Whether this device is on its account's verified device list (else it is pending)."""
        return self._ctx.state.role.is_member

    def take_role(self, role: DeviceRole) -> None:
        if self._ctx.state.move_to(role) and role is DeviceRole.REMOVED:
            self._ctx.emit(DeviceRemoved(self._ctx.username))

    def take_secrets(self, secrets: AccountSecrets) -> None:
        """An epoch's account box opened: this device now holds the account key (a member
        becomes a full member) and the thread key. Committed with the epoch by the caller."""
        state = self._ctx.state
        if self.key is None:
            self.key = SigningKey(secrets.amk_seed)
            state.set_account_key(self.key)
            if state.role is DeviceRole.MEMBER:
                self.take_role(DeviceRole.FULL)
        if state.thread_key is None:
            state.set_thread_key(secrets.thread_key)

    def secrets(self) -> AccountSecrets:
        thread_key = self._ctx.state.thread_key
        if self.key is None or thread_key is None:
            raise PermissionError("this device does not hold the account's secrets")
        return AccountSecrets(amk_seed=self.key.seed, thread_key=thread_key)

    def trusted_public(self, directory: Directory) -> bytes | None:
        """The account key this device trusts: its own if it holds it (or pinned it from a
        pairing or recovery code), else the one its verified own device list is signed with."""
        pinned = self._ctx.state.pinned_account_public
        if pinned is not None:
            return pinned
        own = directory.known(self._ctx.username)
        return own.amk_public if own else None

    def list_changed(self, old: DeviceList | None, new: DeviceList) -> None:
        """A verified device list replaced ``old``: this device's role follows its own list, and
        everyone sees a system line in the conversations concerned (with that user, or all of
        one's own when it is one's own list). Committed with the list by the directory."""
        ctx = self._ctx
        if new.username == ctx.username:
            listed = new.entry(ctx.device_id) is not None
            self.take_role(next_role(ctx.state.role, listed, self.key is not None))
        if old is None:
            return  # first contact: nothing changed from the user's point of view
        if old.amk_public != new.amk_public:
            self._timeline.system_line([new.username], f"{new.username}'s safety number changed")
            return
        who = self._change_author(old, new)
        lines = [
            f"{who} added a device '{d.name}'"
            for d in new.devices
            if d.device_id not in old.device_ids
        ]
        lines += [
            f"{who} removed a device '{d.name}'"
            for d in old.devices
            if d.device_id not in new.device_ids
        ]
        threads = ctx.store.threads()
        if new.username != ctx.username:
            threads = [new.username] if new.username in threads else []
            threads += [g.thread for g in ctx.store.groups() if new.username in g.members]
        for line in lines:
            self._timeline.system_line(threads, line)

    def _change_author(self, old: DeviceList, new: DeviceList) -> str:
        """Who made a change, as a system line names them: a contact by name; on one's own
        account the device that made it ("Desktop"), "You" for this one, or the recovery code.
        The author was verified (a device of the previous list, or its recovery code)."""
        if new.username != self._ctx.username:
            return new.username
        if new.author == self._ctx.device_id:
            return "You"
        entry = old.entry(new.author)
        return entry.name if entry is not None else "The recovery code"
