"""The "server view": what the relay saw of one conversation, for its own members to inspect.

Only a conversation the asking user is part of, and only for a device on the user's list (a
pending device could be anyone who knows the password); "queued" is read from the store.
"""

from __future__ import annotations

import msgspec

from relay.session import Handler, Session
from shared import wire


async def inspect(session: Session, frame: wire.Inspect) -> wire.Frame:
    session.require_member()
    seen = list(session.relay.seen_by(frozenset({session.username, frame.peer})))
    still_queued = session.store.still_queued([e.seq for e in seen])
    return wire.Inspection(
        rid=frame.rid,
        envelopes=[msgspec.structs.replace(e, queued=e.seq in still_queued) for e in seen],
    )


HANDLERS: dict[type, Handler] = {wire.Inspect: inspect}
