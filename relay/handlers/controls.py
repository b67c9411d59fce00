"""Control handlers (PROTOCOL.md §10): a member deletes items of its own account's mailbox (an
unsent, deleted or expired message), and any logged-in device reads the relay's clock, which
decides when disappearing messages expire.

The relay learns that some items of a thread were deleted, and when; not why.
"""

from __future__ import annotations

import time

from relay.session import Handler, Session
from shared import wire


async def delete_mailbox_items(session: Session, frame: wire.DeleteMailboxItems) -> wire.Frame:
    session.require_member()
    session.store.delete_from_mailbox(
        session.username, frame.thread_id, frame.message_ids, frame.through_ts
    )
    await session.store.durable()
    return wire.Ok(rid=frame.rid)


def relay_now_us() -> int:
    return time.time_ns() // 1000


async def fetch_time(session: Session, frame: wire.FetchTime) -> wire.Frame:
    return wire.RelayTime(rid=frame.rid, now_us=relay_now_us())


HANDLERS: dict[type, Handler] = {
    wire.DeleteMailboxItems: delete_mailbox_items,
    wire.FetchTime: fetch_time,
}
