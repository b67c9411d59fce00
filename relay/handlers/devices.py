"""Device handlers: the account's signed device list and its registered devices, pairing a
pending device with a member, rejecting a pending device, and changing the password.

The relay cannot sign a device list (it holds no account key); it checks that each new list is
the next one, signed, published by its author, and names only this account's devices. Pairing
messages are opaque to it: it only forwards them between the member that started an approval and
the pending device whose offer it answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from relay.handlers.history import checked_epoch
from relay.session import Handler, Reject, Session
from shared import wire
from shared.device_list import check_successor, open_device_list
from shared.errors import ProtocolError
from shared.identity import device_id_for
from shared.password import hash_password
from shared.wire import ErrorCode

if TYPE_CHECKING:
    from relay.server import Relay

log = logging.getLogger("ariadne.relay")

PAIRING_OFFER_SECONDS = 600  # a pairing offer not answered within this expires


def expire_pending(relay: Relay, username: str) -> None:
    """Forget the account's devices that stayed unapproved too long (credentials, keys and
    queue) and hang up on them, as a rejection would. Run where it matters: before a new
    device is counted against the quota, and before the approver sees the list."""
    store = relay.store
    cutoff = int(time.time()) - relay.limits.pending_device_seconds
    members = relay.members(username)
    for device in store.devices_of(username):
        if device.device_id not in members and device.registered_at < cutoff:
            store.forget_device(device.device_id)
            log.info("pending device %s expired", device.device_id)
            relay.disconnect(device.device_id, 4003, "pending device expired")


async def fetch_device_list(session: Session, frame: wire.FetchDeviceList) -> wire.Frame:
    store = session.store
    stored = store.device_list(frame.username)
    between = []
    if stored is not None and frame.since is not None:
        between = store.device_lists_between(
            frame.username, frame.since, stored[0], wire.MAX_LISTS_BETWEEN
        )
    return wire.DeviceListReply(
        rid=frame.rid, signed_list=stored[1] if stored else None, between=between
    )


async def publish_device_list(session: Session, frame: wire.PublishDeviceList) -> wire.Frame:
    relay, store, username = session.relay, session.store, session.username
    amk_public = store.amk_public(username)
    try:
        new = open_device_list(frame.signed_list, username, amk_public)
        stored = store.device_list(username)
        current = open_device_list(stored[1], username, amk_public) if stored else None
        if not check_successor(current, stored[1] if stored else None, new, frame.signed_list):
            return wire.Ok(rid=frame.rid)
    except ProtocolError as exc:
        raise Reject(ErrorCode.BAD_DEVICE_LIST, str(exc)) from None
    if current is not None and new.version != current.version + 1:
        raise Reject(ErrorCode.BAD_DEVICE_LIST, "versions must go up one at a time")
    # check_successor checked that the author is on the current list (or is its recovery
    # code) and signed; a device may publish only what it made itself, so a pending device
    # holding the account key (a removed one) cannot put itself back. A device restoring
    # with the code publishes a list its code made: the code's signature is the proof.
    restoring = (
        current is not None
        and current.recovery_key is not None
        and new.author == device_id_for(current.recovery_key)
    )
    if new.author != session.device_id and not restoring:
        raise Reject(ErrorCode.NOT_A_MEMBER, "a device list is published by its author")
    for entry in new.devices:
        registered = store.device(entry.device_id)
        if registered is None or registered.username != username:
            raise Reject(ErrorCode.BAD_DEVICE_LIST, f"device {entry.device_id} is not registered")
        if store.identity_key_owners(entry.identity_key) - {entry.device_id}:
            raise Reject(
                ErrorCode.BAD_DEVICE_LIST, "an identity key on the list is another device's"
            )
    epoch = checked_epoch(session, frame.epoch, new, frame.signed_list)
    removed = (current.device_ids if current else frozenset()) - new.device_ids
    store.set_device_list(username, new.version, frame.signed_list, new.device_ids)
    store.add_epoch(username, epoch, ((g.member_id, g.sealed) for g in frame.epoch.grants))
    relay.forget_members(username)
    for device_id in removed:
        store.forget_device(device_id)
    await store.durable()
    for device_id in removed:
        relay.disconnect(device_id, 4001, "device removed")
    log.info("device list of %s is now version %d", username, new.version)
    # One notice: a device that refreshes its own list also refreshes the epochs.
    relay.notify_user(username, wire.Notice(kind="device_list_changed", username=username))
    return wire.Ok(rid=frame.rid)


async def list_devices(session: Session, frame: wire.ListDevices) -> wire.Frame:
    expire_pending(session.relay, session.username)
    members = session.relay.members(session.username)
    fresh_after = int(time.time()) - PAIRING_OFFER_SECONDS
    return wire.Devices(
        rid=frame.rid,
        devices=[
            wire.RegisteredDevice(
                registration=wire.DeviceRegistration(
                    device_id=d.device_id,
                    name=d.name,
                    sign_public=d.sign_public,
                    storage_key=d.storage_key,
                ),
                identity_key=d.identity_key,
                registered_at=d.registered_at,
                last_seen=d.last_seen,
                member=d.device_id in members,
                pairing_commitment=(
                    d.pairing_commitment
                    if d.device_id not in members and (d.pairing_at or 0) >= fresh_after
                    else None
                ),
                pairing_at=d.pairing_at if d.device_id not in members else None,
            )
            for d in session.store.devices_of(session.username)
        ],
    )


async def offer_pairing(session: Session, frame: wire.OfferPairing) -> wire.Frame:
    if session.is_member:
        raise Reject(ErrorCode.ALREADY_MEMBER, "this device is already on the device list")
    session.store.offer_pairing(session.device_id, frame.commitment, int(time.time()))
    session.relay.pairing_started.pop(session.device_id, None)
    await session.store.durable()
    session.relay.notify_user(
        session.username, wire.Notice(kind="pairing_offer", username=session.username)
    )
    return wire.Ok(rid=frame.rid)


async def pairing_send(session: Session, frame: wire.PairingSend) -> wire.Frame:
    """Forward an opaque pairing message between two devices of the same account: from a
    member only to a pending device with a fresh offer (the first member to do so starts the
    exchange for that offer), and from a pending device only to the member that started the
    exchange for its current offer."""
    relay, store = session.relay, session.store
    target = store.device(frame.to_device)
    if target is None or target.username != session.username:
        raise Reject(ErrorCode.UNKNOWN_DEVICE, "no such device on this account")
    members = relay.members(session.username)
    started: tuple[bytes | None, str] | None
    if session.device_id in members:
        fresh_after = int(time.time()) - PAIRING_OFFER_SECONDS
        if frame.to_device in members or (target.pairing_at or 0) < fresh_after:
            raise Reject(ErrorCode.NO_OFFER, "that device has no open request to be approved")
        offer = (target.pairing_commitment, session.device_id)
        started = relay.pairing_started.get(frame.to_device, offer)
        if started != offer:
            raise Reject(ErrorCode.PAIRING_BUSY, "another device is already approving that one")
    else:
        own = store.device(session.device_id)
        started = relay.pairing_started.get(session.device_id)
        if own is None or started != (own.pairing_commitment, frame.to_device):
            raise Reject(
                ErrorCode.NOT_STARTED, "no approval of this device was started by that one"
            )
    if not relay.is_connected(frame.to_device):
        raise Reject(ErrorCode.NOT_CONNECTED, "that device is not online")
    if session.device_id in members:
        relay.pairing_started[frame.to_device] = offer
    relay.push_to(
        frame.to_device, wire.PairingPush(from_device=session.device_id, payload=frame.payload)
    )
    return wire.Ok(rid=frame.rid)


async def reject_device(session: Session, frame: wire.RejectDevice) -> wire.Frame:
    session.require_member()
    relay, store = session.relay, session.store
    target = store.device(frame.device_id)
    if target is None or target.username != session.username:
        raise Reject(ErrorCode.UNKNOWN_DEVICE, "no such device on this account")
    if frame.device_id in relay.members(session.username):
        raise Reject(ErrorCode.IS_MEMBER, "remove a listed device with a new device list")
    store.forget_device(frame.device_id)
    await store.durable()
    relay.disconnect(frame.device_id, 4002, "device rejected")
    log.info("pending device %s rejected", frame.device_id)
    return wire.Ok(rid=frame.rid)


async def change_password(session: Session, frame: wire.ChangePassword) -> wire.Frame:
    """A member sets a new password. Logins made with the old one end: pending devices
    (registered with it) are forgotten and disconnected; members log in by their keys."""
    session.require_member()
    relay, store, username = session.relay, session.store, session.username
    password_hash = await asyncio.to_thread(hash_password, frame.password)
    store.set_password_hash(username, password_hash)
    members = relay.members(username)
    pending = [d.device_id for d in store.devices_of(username) if d.device_id not in members]
    for device_id in pending:
        store.forget_device(device_id)
    await store.durable()
    for device_id in pending:
        relay.disconnect(device_id, 4003, "password changed")
    log.info("password of %s changed; %d pending devices forgotten", username, len(pending))
    return wire.Ok(rid=frame.rid)


HANDLERS: dict[type, Handler] = {
    wire.FetchDeviceList: fetch_device_list,
    wire.PublishDeviceList: publish_device_list,
    wire.ListDevices: list_devices,
    wire.OfferPairing: offer_pairing,
    wire.PairingSend: pairing_send,
    wire.RejectDevice: reject_device,
    wire.ChangePassword: change_password,
}
