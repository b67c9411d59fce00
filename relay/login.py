"""Login: the first frame of a connection, answering the relay's challenge.

Three ways in: create an account with its first device, add a pending device to an account with
its password, or resume as a registered device by its signing key. Password guesses are
throttled per account and per source address, Argon2id runs at most a few at once, and an
account holds at most a few pending devices. Each refusal is a :class:`Reject` with its code; the
connection answers it and hangs up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from typing import TYPE_CHECKING

from relay.handlers.devices import expire_pending
from relay.login_scope import login_scope
from relay.session import Reject
from relay.store import DeviceRow
from shared import wire
from shared.auth import verify_login
from shared.identity import device_id_for
from shared.password import check_password, hash_password
from shared.wire import ErrorCode

if TYPE_CHECKING:
    from relay.server import Relay

log = logging.getLogger("ariadne.relay")


@functools.cache
def _unknown_user_hash() -> str:
    """A hash to verify against when the username is unknown (made once, never matches)."""
    return hash_password(os.urandom(16).hex())


async def log_in(
    relay: Relay, frame: wire.ClientFrame, nonce: bytes, source: str
) -> tuple[str, str]:
    """Check a login frame against ``nonce``; returns (username, device id) or raises."""
    match frame:
        case wire.CreateAccount():
            return await _create_account(relay, frame, nonce)
        case wire.AddDevice():
            return await _add_device(relay, frame, nonce, source)
        case wire.Resume():
            return _resume(relay, frame, nonce)
        case _:
            raise Reject(ErrorCode.LOGIN_REQUIRED, "log in first")


def _registered_device(frame: wire.CreateAccount | wire.AddDevice, nonce: bytes) -> DeviceRow:
    """Check that the new device's id matches its key and that it signed the challenge."""
    device = frame.device
    if device_id_for(device.sign_public) != device.device_id:
        raise Reject(ErrorCode.BAD_DEVICE_ID, "device id does not match its signing key")
    if not verify_login(
        device.sign_public, frame.signature, nonce, frame.username, device.device_id
    ):
        raise Reject(ErrorCode.BAD_SIGNATURE)
    return DeviceRow(
        device.device_id,
        frame.username,
        device.name,
        device.sign_public,
        device.storage_key,
        int(time.time()),
        None,
    )


async def _create_account(relay: Relay, frame: wire.CreateAccount, nonce: bytes) -> tuple[str, str]:
    store = relay.store
    row = _registered_device(frame, nonce)
    async with relay.shared.password_hashing:
        password_hash = await asyncio.to_thread(hash_password, frame.password)
    if store.device(row.device_id) is not None:  # checked after the await: no race
        raise Reject(ErrorCode.DEVICE_TAKEN, "this device is registered to another account")
    if not store.create_account(frame.username, password_hash, frame.amk_public, row):
        raise Reject(ErrorCode.USERNAME_TAKEN, "that username is taken")
    await store.durable()
    return frame.username, row.device_id


async def _add_device(
    relay: Relay, frame: wire.AddDevice, nonce: bytes, source: str
) -> tuple[str, str]:
    store, shared = relay.store, relay.shared
    row = _registered_device(frame, nonce)
    wait = max(shared.account_logins.wait(frame.username), shared.source_logins.wait(source))
    if wait > 0:
        raise Reject(
            ErrorCode.LOGIN_THROTTLED,
            "too many wrong passwords",
            retry_after=min(wait, wire.MAX_RETRY_AFTER),
        )
    # Counted as a failure before it is checked, in the same step as the wait above: guesses
    # in flight together (on this node or another) each see the ones before them.
    shared.account_logins.failed(frame.username)
    shared.source_logins.failed(source)
    stored = store.password_hash(frame.username)
    # One Argon2id verification whether or not the user exists: timing tells nothing.
    async with shared.password_hashing:
        ok = await asyncio.to_thread(check_password, frame.password, stored or _unknown_user_hash())
    # (The password may have changed while this one was checked: a login made with the old
    # one must not outlive the change.)
    if stored is None or not ok or store.password_hash(frame.username) != stored:
        shared.account_logins.answered(frame.username)
        shared.source_logins.answered(source)
        raise Reject(ErrorCode.BAD_CREDENTIALS, "wrong username or password")
    shared.account_logins.succeeded(frame.username)
    shared.source_logins.uncounted(source)
    existing = store.device(row.device_id)
    if existing is None:
        expire_pending(relay, frame.username)
        members = relay.members(frame.username)
        pending = [d for d in store.devices_of(frame.username) if d.device_id not in members]
        if len(pending) >= relay.limits.pending_devices:
            raise Reject(
                ErrorCode.TOO_MANY_PENDING,
                f"{len(pending)} devices already wait for approval: approve or reject them",
            )
        store.add_device(row)
        await store.durable()
    elif existing.username != frame.username:
        raise Reject(ErrorCode.DEVICE_TAKEN, "this device is registered to another account")
    log.info("pending device %s registered for %s", row.device_id, frame.username)
    relay.notify_user(
        frame.username, wire.Notice(kind="device_list_changed", username=frame.username)
    )
    return frame.username, row.device_id


class NotRegistered(Reject):
    """The device is not registered (any more): answered with the account's newest signed lists,
    which the device checks for its own removal (``wire.NotRegistered``)."""

    def __init__(self, lists: list[bytes]) -> None:
        super().__init__(ErrorCode.UNKNOWN_DEVICE, "this device is not registered")
        self.lists = lists

    def answer(self, rid: int) -> wire.NotRegistered:
        return wire.NotRegistered(rid=rid, lists=self.lists)


def _newest_lists(relay: Relay, username: str) -> list[bytes]:
    """The account's newest signed lists, oldest first: what any registered user may fetch."""
    current = relay.store.device_list(username)
    if current is None:
        return []
    version, signed = current
    since = max(0, version - wire.MAX_LISTS_BETWEEN)
    between = relay.store.device_lists_between(username, since, version, wire.MAX_LISTS_BETWEEN - 1)
    return [*between, signed]


def _resume(relay: Relay, frame: wire.Resume, nonce: bytes) -> tuple[str, str]:
    with login_scope(relay.store):
        device = relay.store.device(frame.device_id)
        if device is None or device.username != frame.username:
            raise NotRegistered(_newest_lists(relay, frame.username))
    if not verify_login(
        device.sign_public, frame.signature, nonce, frame.username, frame.device_id
    ):
        raise Reject(ErrorCode.BAD_SIGNATURE)
    return frame.username, frame.device_id
