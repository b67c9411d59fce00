"""Messages that the relay accepted but that reach no device of their recipient.

A relay can withhold a message and no cryptography prevents it; what the sender can see is that
no delivery receipt comes back. :class:`DeliveryWatch` follows this device's sent messages and
says so (``DeliveryOverdue``) when one is still only "sent" after ``overdue_after`` seconds, so
the conversation shows that it is waiting instead of looking finished.

One background task sleeps until the earliest deadline; nothing is polled while nothing waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from client.core.context import ClientContext
from client.core.events import DeliveryOverdue, DeliveryUpdated, Event, MessageStatus

OVERDUE_SECONDS = 30.0


class DeliveryWatch:
    def __init__(
        self,
        ctx: ClientContext,
        overdue_after: float = OVERDUE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self.overdue_after = overdue_after  # the demo shortens it to show withholding live
        self._clock = clock
        self._waiting: dict[bytes, tuple[float, str]] = {}  # message id → (deadline, thread)
        self._wake = asyncio.Event()
        self._running = False
        ctx.listeners.append(self._on_event)

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, DeliveryUpdated):
            return
        if event.status is MessageStatus.SENT:
            self._waiting[event.message_id] = (self._clock() + self.overdue_after, event.thread)
            self._wake.set()
            if not self._running:
                self._running = True
                self._ctx.in_background(self._run())
        elif event.status.rank > MessageStatus.SENT.rank or event.status is MessageStatus.FAILED:
            self._waiting.pop(event.message_id, None)

    async def _run(self) -> None:
        try:
            while self._waiting:
                self._wake.clear()
                deadline = min(d for d, _ in self._waiting.values())
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - self._clock()))
                    continue  # a new message may have an earlier deadline
                except TimeoutError:
                    pass
                now = self._clock()
                for message_id, (due, thread) in list(self._waiting.items()):
                    if due > now:
                        continue
                    # Still here: no receipt came (a receipt or a failure took it out).
                    del self._waiting[message_id]
                    self._ctx.emit(DeliveryOverdue(message_id, thread, self.overdue_after))
        finally:
            self._running = False
