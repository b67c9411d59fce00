"""The group fan-out: one group message (encrypted once under its sender's sender key) queued
for every device the sender lists.

The relay learns no more about a group than this: which devices (of which users) one message
goes to, from whom, when and how big — the group id, sender key id and iteration in the
message's header are opaque numbers to it. It keeps no membership: the sender names the devices,
and the relay only checks, as for a one-to-one fan-out, that each named user's devices are
exactly that user's current signed list (``Mismatch`` otherwise), that every queue has room, and
that a resend with the same ``send_id`` is answered without queueing twice.
"""

from __future__ import annotations

import logging

from relay.handlers.delivery import _accepted
from relay.session import Handler, Reject, Session
from shared import wire
from shared.wire import ErrorCode

log = logging.getLogger("ariadne.relay")


async def group_send(session: Session, frame: wire.GroupSend) -> wire.Frame | None:
    session.require_member()
    relay, store = session.relay, session.store
    earlier = store.fan_out_time(session.device_id, frame.send_id)
    if earlier is not None:
        store.when_durable(lambda error: _accepted(session, error, frame.rid, earlier, []))
        return None
    mismatches = []
    devices: dict[str, str] = {}  # device -> its user
    users = [r.username for r in frame.recipients]
    if len(set(users)) != len(users):
        raise Reject(ErrorCode.BAD_REQUEST, "a user appears twice")
    for recipient in frame.recipients:
        expected = relay.members(recipient.username)
        if recipient.username == session.username:
            expected = expected - {session.device_id}
        elif not expected:
            raise Reject(ErrorCode.UNKNOWN_USER, f"no user {recipient.username}")
        got = set(recipient.device_ids)
        if len(got) != len(recipient.device_ids) or got & devices.keys():
            raise Reject(ErrorCode.BAD_REQUEST, "a device appears twice")
        if got != expected:
            mismatches.append(
                wire.DeviceMismatch(
                    username=recipient.username,
                    missing=sorted(expected - got),
                    extra=sorted(got - expected),
                )
            )
        devices.update(dict.fromkeys(recipient.device_ids, recipient.username))
    if mismatches:
        return wire.Mismatch(rid=frame.rid, users=mismatches)
    for device_id, username in devices.items():
        if not store.queue_has_room(device_id, len(frame.payload), session.limits.queue_bytes):
            raise Reject(ErrorCode.QUEUE_FULL, f"{username} {device_id}")
    server_ts = relay.next_timestamp()
    store.record_fan_out(session.device_id, frame.send_id, server_ts)
    queued = store.enqueue(
        [
            (device_id, session.username, session.device_id, server_ts, frame.payload)
            for device_id in devices
        ]
    )
    log.debug("group fan-out from %s: %d devices", session.device_id, len(queued))
    relay.record_seen(frozenset({*users, session.username}), queued, devices)
    store.when_durable(lambda error: _accepted(session, error, frame.rid, server_ts, queued))
    return None


HANDLERS: dict[type, Handler] = {wire.GroupSend: group_send}
