"""An authenticated session: who is logged in, and what a handler may do on their behalf.

A handler gets a :class:`Session` and a decoded frame and returns the reply (or ``None`` when the
reply comes later, through :meth:`Session.reply`). It reaches the store, the relay-wide state and
other devices' connections only through the session and the relay's public methods, so that a
handler can be run in a unit test with a real store and no websocket. A refusal is raised as
:class:`Reject` and answered with an ``Error`` frame naming its code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from shared import wire
from shared.wire import ErrorCode

if TYPE_CHECKING:
    from relay.limits import Limits, SharedLimits
    from relay.server import Relay
    from relay.storage import RelayStorage


class Reject(Exception):
    """Answer the current request with an error frame."""

    def __init__(self, code: ErrorCode, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after

    def frame(self, rid: int | None) -> wire.Error:
        return wire.Error(rid=rid, code=self.code, detail=self.detail, retry_after=self.retry_after)


class Session:
    """One logged-in device of one account. ``reply`` queues a frame for this device's own
    connection (an answer that comes after the handler returned, or a notice)."""

    __slots__ = ("device_id", "relay", "reply", "username")

    def __init__(
        self, relay: Relay, username: str, device_id: str, reply: Callable[[wire.Frame], None]
    ) -> None:
        self.relay = relay
        self.username = username
        self.device_id = device_id
        self.reply = reply

    @property
    def store(self) -> RelayStorage:
        return self.relay.store

    @property
    def limits(self) -> Limits:
        return self.relay.limits

    @property
    def shared(self) -> SharedLimits:
        return self.relay.shared

    @property
    def is_member(self) -> bool:
        """On its account's current signed device list (a pending device is not)."""
        return self.device_id in self.relay.members(self.username)

    def require_member(self) -> None:
        if not self.is_member:
            raise Reject(
                ErrorCode.PENDING_DEVICE, "this device is not on its account's device list"
            )


# A handler: (session, the decoded frame of its type) → the reply, or None (later, or none).
Handler = Callable[[Session, Any], Awaitable[wire.Frame | None]]
