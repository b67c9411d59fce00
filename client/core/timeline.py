"""Where messages stand in a conversation beyond their relay time: each sending device's own
order (the counter it authenticated) against the relay's times, and the system lines that tell
the user what changed (devices, safety numbers, a reordering the relay caused).

Shared by the inbox (messages received) and the outbox (the relay's answer to a send).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterable, Iterator

from client.core.context import ClientContext
from client.core.events import (
    DeliveryUpdated,
    Event,
    MessageReceived,
    MessageStatus,
    OutOfOrderDelivery,
    StoredMessage,
)
from client.core.ordering import place
from shared.envelope import new_message_id

log = logging.getLogger("ariadne.client")


# The relay time of the delivery the current task is opening (see Timeline.during_delivery).
_delivery_time: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "delivery_time", default=None
)


class Timeline:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    def in_sender_order(
        self, message: StoredMessage, counter: int, server_ts: int
    ) -> tuple[int, list[Event]]:
        """Place a stored message in its sending device's order; returns its time and, if the
        relay's times contradicted that order, the events for the messages that moved."""
        placement = place(
            self._ctx.store,
            message.thread,
            message.sender_user,
            message.sender_device,
            message.message_id,
            counter,
            server_ts,
        )
        if not placement.contradicted:
            return placement.server_ts, []
        log.warning(
            "relay times contradict the order of device %s: %d messages moved",
            message.sender_device,
            len(placement.moved),
        )
        events: list[Event] = []
        for moved_id, moved_ts in placement.moved:
            moved = self._ctx.store.message(moved_id)
            if moved is not None:
                events.append(DeliveryUpdated(moved_id, moved.thread, moved.status, moved_ts))
        events.append(
            OutOfOrderDelivery(message.thread, message.sender_user, message.sender_device)
        )
        return placement.server_ts, events

    def report_reordering(self, events: Iterable[Event]) -> None:
        """One system line per conversation and sender whose order the relay contradicted."""
        reported = [(e.thread, e.sender_user) for e in events if isinstance(e, OutOfOrderDelivery)]
        for thread, user in dict.fromkeys(reported):
            whose, who = ("your", "you") if user == self._ctx.username else (f"{user}'s", user)
            self.system_line(
                [thread],
                f"the relay delivered {whose} messages out of order;"
                f" they are shown in the order {who} sent them",
            )

    @contextlib.contextmanager
    def during_delivery(self, server_ts: int) -> Iterator[None]:
        """While one delivery is opened, the system lines it brings (a device list it carries,
        or one fetched because it came from a device not listed yet) are placed where it sits in
        the relay's order, just before it: not at the time this device got round to it, which
        after a while offline is after everything sent since. Per task (a context variable):
        a line the user's own action makes meanwhile keeps its own time."""
        token = _delivery_time.set(server_ts)
        try:
            yield
        finally:
            _delivery_time.reset(token)

    def _line_time(self, thread: str, now: int) -> int:
        """A line's place: now, or during a delivery just before it, but never above what the
        thread already showed (a relay's time cannot bury the line in old history) nor in the
        future."""
        delivered = _delivery_time.get()
        if delivered is None:
            return now
        newest = self._ctx.store.newest_time(thread)
        shown = newest + 1 if newest is not None else 0
        return min(now, max(delivered - 1, shown))

    def system_line(self, threads: list[str], line: str) -> None:
        # The relay's clock, as for every time this device stamps: a deleted conversation covers
        # everything up to the relay's now, and a line stamped by a slow computer's own clock
        # would fall inside it and be refused.
        now = self._ctx.clock.now_ms() * 1000
        for thread in threads:
            at = self._line_time(thread, now)
            message = StoredMessage(
                message_id=new_message_id(),
                thread=thread,
                sender_user="",
                sender_device="",
                sent_at=at // 1000,
                server_ts=at,
                body=line,
                status=MessageStatus.SYSTEM,
            )
            self._ctx.store.insert_message(message)
            self._ctx.emit(MessageReceived(message))
