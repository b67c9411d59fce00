"""Re-creating this device's account on a relay that lost its data.

The relay holds nothing the devices cannot rebuild. A member device that holds the account key
creates the account again with its own device keys and the account's key (``CreateAccount``,
with the password the user types), then uploads the signed state it holds: its current device
list and every epoch head with the boxes under its root (``RebuildAccount``; the relay registers
the listed devices from the list, so the account's other devices log in again with their keys).
It re-uploads its pre-keys, opens a new epoch with a grant for every member and the recovery
code (a new list version authored by this device, shared end to end like any list change), and
queues every message it holds for the mailbox, so history is restorable again.

Contacts and the account's other devices verify all of it as usual: the list must be signed by
the account key they pinned and newer than the one they hold, each change's author on the list
before, the epochs must extend the chain they hold. Messages the relay lost are offered again by
their senders (the outbox keeps every message until a recipient device confirms it).
"""

from __future__ import annotations

import asyncio
import contextlib

from client.core.context import ClientContext
from client.core.directory import UnknownUser
from client.core.engine import Engine
from client.core.events import ConnectionState
from client.core.link import RelayLink
from client.core.login import Login
from client.core.port import RelayError
from shared import wire
from shared.device_list import next_device_list


class Rebuild:
    def __init__(self, context: ClientContext, engine: Engine, login: Login, link: RelayLink):
        self._ctx = context
        self._engine = engine
        self._login = login
        self._link = link
        self._done: asyncio.Event | None = None

    @property
    def pending(self) -> bool:
        return self._done is not None and not self._done.is_set()

    async def run(self, password: str, timeout: float = 30.0) -> None:
        """Create the account again on the relay and upload what this device holds. Raises
        ``PermissionError`` on a device without the account key, :class:`RelayError` if the
        relay refuses (the username is taken there, a wrong list)."""
        account = self._engine.account
        if account.key is None or not account.is_member:
            raise PermissionError("only a device holding the account key can rebuild it")
        self._done = asyncio.Event()
        self._login.recreate(password)
        self._link.retry()
        async with asyncio.timeout(timeout):
            while not self._done.is_set():
                if self._link.state is ConnectionState.FAILED and self._link.login_error:
                    self._done = None
                    raise self._link.login_error
                await asyncio.sleep(0.05)

    async def upload(self) -> None:
        """After the relay accepted the account again: the list, the epochs, the keys, a new
        epoch for every member, the history. Called by the router on login."""
        ctx, engine = self._ctx, self._engine
        username = ctx.username
        own, signed = engine.directory.known(username), engine.directory.signed(username)
        amk = engine.account.key
        if own is None or signed is None or amk is None:
            raise PermissionError("this device holds no verified list of its own account")
        records = []
        for seq in range(1, ctx.store.latest_epoch_seq() + 1):
            kept = ctx.store.epoch(seq)
            if kept is None:
                raise PermissionError(f"this device does not hold epoch {seq}")
            records.append(
                wire.EpochRecord(
                    signed_head=kept.signed_head,
                    prev_root_box=kept.prev_root_box,
                    account_box=kept.account_box,
                )
            )
        await ctx.port.request(
            lambda rid: wire.RebuildAccount(rid=rid, signed_list=signed, epochs=records),
            expect=wire.Ok,
        )
        await engine.devices.publish_keys(top_up=True)
        renewed = next_device_list(amk, ctx.profile.sign_key, own, signed)
        await engine.devices.publish_device_list(renewed)
        engine.outbox.share_device_list(renewed)
        with ctx.store.transaction():
            ctx.store.save_all_later()
        ctx.mailbox_wake.set()
        # The relay lost the notices of its contacts' list changes too: ask again, verified as
        # always (a contact not rebuilt yet shares its new list end to end when it is).
        for contact in ctx.store.threads():
            if contact != username:
                with contextlib.suppress(UnknownUser, RelayError):
                    await engine.directory.refresh(contact)
        if self._done is not None:
            self._done.set()
