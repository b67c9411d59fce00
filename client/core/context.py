"""What every concern of the client engine shares: the store, the relay port, who this device
is, the events it emits, and its background tasks.

The concerns (:mod:`~client.core.inbox`, :mod:`~client.core.outbox`, …) get this small context
instead of callbacks into :class:`~client.core.client.AriadneClient`, so control flows one way:
the façade calls a concern, a concern calls the context and the concerns below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from client.core.clock import RelayClock
from client.core.directory import UnknownUser
from client.core.events import Event
from client.core.port import Offline, RelayError, RelayPort
from client.core.profile import Profile, ProfileState
from client.core.storage import ProfileStore
from shared.envelope import Origin

log = logging.getLogger("ariadne.client")


@dataclass
class ClientContext:
    store: ProfileStore
    port: RelayPort
    profile: Profile
    state: ProfileState
    # Set to make the outbox (mailbox) loop look for work: new items, or the relay back.
    outbox_wake: asyncio.Event = field(default_factory=asyncio.Event)
    mailbox_wake: asyncio.Event = field(default_factory=asyncio.Event)
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    # The relay's clock as this device reads it (disappearing messages expire by it).
    clock: RelayClock = field(default_factory=RelayClock)

    @property
    def username(self) -> str:
        return self.profile.username

    @property
    def device_id(self) -> str:
        return self.profile.device_id

    def emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    def in_background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` as a task the client cancels on close. Losing the relay, a refusal
        or an unknown user ends it quietly: the next login or notice tries again."""

        async def guarded() -> None:
            with contextlib.suppress(Offline, RelayError, UnknownUser):
                await coroutine

        task = asyncio.create_task(guarded())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def origin(self) -> Origin:
        """This device as the sender of its next payload. The counter goes up by one per payload
        in the order payloads enter the outbox, which sends them in that order (committed by the
        caller together with the outbox entry)."""
        counter = self.state.next_send_counter()
        return Origin(user=self.username, device=self.device_id, counter=counter)
