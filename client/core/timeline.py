"""Where messages stand in a conversation beyond their relay time: each sending device's own
order (the counter it authenticated) against the relay's times, and the system lines that tell
the user what changed (devices, safety numbers, a reordering the relay caused).

Shared by the inbox (messages received) and the outbox (the relay's answer to a send).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

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

    def system_line(self, threads: list[str], line: str) -> None:
        now = time.time_ns() // 1000
        for thread in threads:
            message = StoredMessage(
                message_id=new_message_id(),
                thread=thread,
                sender_user="",
                sender_device="",
                sent_at=now // 1000,
                server_ts=now,
                body=line,
                status=MessageStatus.SYSTEM,
            )
            self._ctx.store.insert_message(message)
            self._ctx.emit(MessageReceived(message))
