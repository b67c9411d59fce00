"""Delivery handlers: the fan-out of one message to every device of its users, acknowledgements,
and the key directory a sender needs first (publishing keys, fetching pre-key bundles).

A fan-out is all or nothing: every recipient user's current device list exactly (else
``Mismatch``, so the sender refreshes and retries), room in every queue (else ``queue_full``).
The sender gets ``Accepted`` only after the group commit (``RelayStorage.when_durable``);
connected recipients get the envelopes pushed to their connections at the same moment.
"""

from __future__ import annotations

import logging

from relay.session import Handler, Reject, Session
from relay.storage import StoreUnavailable
from relay.store import QueuedEnvelope
from shared import wire
from shared.wire import ErrorCode

log = logging.getLogger("ariadne.relay")


async def send(session: Session, frame: wire.Send) -> wire.Frame | None:
    session.require_member()
    relay, store = session.relay, session.store
    earlier = store.fan_out_time(session.device_id, frame.send_id)
    if earlier is not None:
        # Stored before, but the answer was lost: answer again, queue nothing twice.
        store.when_durable(lambda error: _accepted(session, error, frame.rid, earlier, []))
        return None
    mismatches = []
    rows: list[tuple[str, str, bytes]] = []  # device, its user, payload
    seen_users: set[str] = set()
    for recipient in frame.recipients:
        if recipient.username in seen_users:
            raise Reject(ErrorCode.BAD_REQUEST, "a user appears twice")
        seen_users.add(recipient.username)
        expected = relay.members(recipient.username)
        if recipient.username == session.username:
            expected = expected - {session.device_id}
        got = [e.device_id for e in recipient.envelopes]
        if len(set(got)) != len(got):
            raise Reject(ErrorCode.BAD_REQUEST, "a device appears twice")
        if not expected and recipient.username != session.username:
            raise Reject(ErrorCode.UNKNOWN_USER, f"no user {recipient.username}")
        if set(got) != expected:
            mismatches.append(
                wire.DeviceMismatch(
                    username=recipient.username,
                    missing=sorted(expected - set(got)),
                    extra=sorted(set(got) - expected),
                )
            )
        rows.extend((e.device_id, recipient.username, e.payload) for e in recipient.envelopes)
    if mismatches:
        return wire.Mismatch(rid=frame.rid, users=mismatches)
    for device_id, username, payload in rows:
        if not store.queue_has_room(device_id, len(payload), session.limits.queue_bytes):
            # All or nothing: the sender keeps the message and tries again later.
            raise Reject(ErrorCode.QUEUE_FULL, f"{username} {device_id}")
    server_ts = relay.next_timestamp()
    store.record_fan_out(session.device_id, frame.send_id, server_ts)
    queued = store.enqueue(
        [
            (device_id, session.username, session.device_id, server_ts, payload)
            for device_id, _, payload in rows
        ]
    )
    log.debug("fan-out from %s: %d envelopes", session.device_id, len(queued))
    relay.record_seen(
        frozenset(seen_users | {session.username}),
        queued,
        {device_id: username for device_id, username, _ in rows},
    )
    store.when_durable(lambda error: _accepted(session, error, frame.rid, server_ts, queued))
    return None


def _accepted(
    session: Session,
    error: BaseException | None,
    rid: int,
    server_ts: int,
    queued: list[QueuedEnvelope],
) -> None:
    """Once the fan-out is committed: push it to connected recipients, answer the sender."""
    if isinstance(error, StoreUnavailable):
        return  # the relay hangs up on the device, which resends this with its send_id
    if error is not None:
        session.reply(wire.Error(rid=rid, code=ErrorCode.INTERNAL_ERROR, detail="not stored"))
        return
    for envelope in queued:
        session.relay.deliver(envelope)
    session.reply(wire.Accepted(rid=rid, server_ts=server_ts))


async def ack(session: Session, frame: wire.Ack) -> None:
    session.store.acknowledge(session.device_id, frame.seqs)


async def publish_keys(session: Session, frame: wire.PublishKeys) -> wire.Frame:
    store = session.store
    if store.identity_key_owners(frame.identity_key) - {session.device_id}:
        raise Reject(ErrorCode.IDENTITY_KEY_TAKEN, "another device uses this identity key")
    store.set_keys(
        session.device_id,
        frame.identity_key,
        frame.signed_pre_key,
        frame.signed_pre_key_sig,
        frame.one_time_pre_keys,
    )
    await store.durable()
    return wire.Ok(rid=frame.rid)


async def fetch_bundles(session: Session, frame: wire.FetchBundles) -> wire.Frame:
    relay, store = session.relay, session.store
    if not session.shared.bundle_fetches.take(session.username, len(frame.device_ids)):
        raise Reject(ErrorCode.RATE_LIMITED, "too many pre-key requests")
    members = relay.members(frame.username)
    bundles = []
    for device_id in dict.fromkeys(frame.device_ids):
        if device_id not in members:
            continue  # pending or unknown devices get no sessions
        with_pre_key = session.shared.pre_keys_handed_out.take(frame.username)
        row = store.take_bundle(device_id, with_pre_key)
        if row is None:
            continue
        bundles.append(
            wire.PreKeyBundle(
                device_id=device_id,
                identity_key=row.identity_key,
                signed_pre_key=row.signed_pre_key,
                signed_pre_key_sig=row.signed_pre_key_sig,
                one_time_pre_key=row.one_time_pre_key,
            )
        )
        left = store.pre_key_count(device_id)
        if left < wire.PRE_KEYS_LOW:
            relay.push_to(device_id, wire.Notice(kind="prekeys_low", count=left))
    return wire.Bundles(rid=frame.rid, bundles=bundles)


HANDLERS: dict[type, Handler] = {
    wire.Send: send,
    wire.Ack: ack,
    wire.PublishKeys: publish_keys,
    wire.FetchBundles: fetch_bundles,
}
