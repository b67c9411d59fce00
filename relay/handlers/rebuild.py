"""Re-creating an account on a relay that lost it (``RebuildAccount``).

The relay holds nothing its devices cannot rebuild: a member device that holds the account key
creates the account again (``CreateAccount`` with its own device keys and the account's key)
and then uploads what it holds, the account's current signed device list and every epoch head
with the boxes under its root. The relay checks them as it checks any list and epoch (the
account key's signatures, the epochs' chain from the first) and registers the listed devices from
the signed list, so the account's other devices log in again with their own keys. Grants are not
uploaded (each member keeps the roots it opened); the rebuilding device then opens a new epoch
with a grant for every member, the recovery code's too, so history is restorable again.

Nothing here is trusted by the clients: contacts and the account's own devices verify the list
and the epochs under the usual rules, so a relay cannot use this path to roll anything back (a
list older than the one a device holds is refused, an epoch chain that does not extend the held
one is refused).
"""

from __future__ import annotations

import logging
import time

from relay.session import Handler, Reject, Session
from relay.store import DeviceRow, EpochRow
from shared import wire
from shared.device_list import open_device_list
from shared.epoch import head_hash, open_head
from shared.errors import ProtocolError
from shared.wire import ErrorCode

log = logging.getLogger("ariadne.relay")


async def rebuild_account(session: Session, frame: wire.RebuildAccount) -> wire.Frame:
    relay, store, username = session.relay, session.store, session.username
    if store.device_list(username) is not None or store.latest_epoch(username) is not None:
        raise Reject(ErrorCode.BAD_REQUEST, "the account already has a device list")
    amk_public = store.amk_public(username) or b""
    try:
        device_list = open_device_list(frame.signed_list, username, amk_public)
    except ProtocolError as exc:
        raise Reject(ErrorCode.BAD_DEVICE_LIST, str(exc)) from None
    if device_list.entry(session.device_id) is None:
        raise Reject(ErrorCode.NOT_A_MEMBER, "the list does not name this device")
    epochs: list[EpochRow] = []
    for seq, record in enumerate(frame.epochs, start=1):
        try:
            head = open_head(record.signed_head, username, amk_public)
        except ProtocolError as exc:
            raise Reject(ErrorCode.BAD_EPOCH, str(exc)) from None
        chained = seq == 1 or head.prev_head_hash == head_hash(epochs[-1].signed_head)
        if head.seq != seq or not chained or (seq == 1) != (record.prev_root_box == b""):
            raise Reject(ErrorCode.BAD_EPOCH, "epochs must chain from the first")
        epochs.append(EpochRow(seq, record.signed_head, record.prev_root_box, record.account_box))
    now = int(time.time())
    for entry in device_list.devices:
        registered = store.device(entry.device_id)
        if registered is not None and registered.username != username:
            raise Reject(ErrorCode.DEVICE_TAKEN, f"device {entry.device_id} is another account's")
        if registered is None:
            store.add_device(
                DeviceRow(
                    entry.device_id,
                    username,
                    entry.name,
                    entry.sign_public,
                    entry.storage_key,
                    now,
                    None,
                )
            )
    store.set_device_list(username, device_list.version, frame.signed_list, device_list.device_ids)
    for epoch in epochs:
        store.add_epoch(username, epoch, ())
    relay.forget_members(username)
    await store.durable()
    log.info("account %s rebuilt: list version %d", username, device_list.version)
    return wire.Ok(rid=frame.rid)


HANDLERS: dict[type, Handler] = {wire.RebuildAccount: rebuild_account}
