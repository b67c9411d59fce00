"""The client engine's one way to the relay: a typed request/reply port.

Every concern of the engine (directory, epochs, mailbox, pairing, recovery, sending) asks the
relay through :class:`RelayPort` and names the reply type it expects. The answer is checked here,
once: an ``Error`` frame becomes :class:`RelayError`, and a reply of another type (a relay that
answers a ``FetchEpochs`` with a ``Devices``) becomes :class:`UnexpectedReply`, a
:class:`RelayError` too, so every caller that already copes with a refusing relay copes with a
confused or hostile one the same way instead of tripping over an assertion.

The websocket link (:class:`client.core.link.RelayLink`) implements the port for real; the unit
tests implement it in memory, so one concern can be tested without a relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar, overload

from shared import wire

ReplyT = TypeVar("ReplyT", bound=wire.Frame)
OtherT = TypeVar("OtherT", bound=wire.Frame)

FrameFactory = Callable[[int], wire.Frame]
"""Given a fresh request id, the frame to send (so a retried request gets a new id)."""


class Offline(Exception):
    """The relay is not reachable right now; try again after reconnecting."""


class RelayError(Exception):
    """The relay refused a request (``code`` says why, ``retry_after`` when a limit lifts)."""

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class DeviceNotRegistered(RelayError):
    """The relay does not know this device. Not a proof of removal (the relay may have lost its
    data, or lie): ``lists`` are the signed lists it offered, which the device verifies."""

    def __init__(self, lists: list[bytes]) -> None:
        super().__init__(wire.ErrorCode.UNKNOWN_DEVICE, "the relay does not know this device")
        self.lists = lists


class UnexpectedReply(RelayError):
    """The relay answered with a frame of a type the request does not have as its reply."""

    def __init__(self, request: str, reply: wire.Frame) -> None:
        super().__init__("unexpected_reply", f"{type(reply).__name__} in answer to {request}")
        self.reply = reply


def checked_reply(
    request: wire.Frame, answer: wire.Frame, expect: type[ReplyT] | tuple[type[ReplyT], ...]
) -> ReplyT:
    """``answer`` as the reply type ``request`` expects (and the protocol gives it,
    :data:`shared.wire.REPLIES`), or the error the relay's answer means."""
    if isinstance(answer, wire.Error):
        raise RelayError(answer.code, answer.detail, answer.retry_after)
    if not isinstance(answer, expect) or not isinstance(answer, wire.REPLIES[type(request)]):
        raise UnexpectedReply(type(request).__name__, answer)
    return answer


class RelayPort(Protocol):
    """What the engine needs of a relay connection."""

    online: asyncio.Event

    @overload
    async def request(self, make: FrameFactory, expect: type[ReplyT]) -> ReplyT: ...

    @overload
    async def request(
        self, make: FrameFactory, expect: tuple[type[ReplyT], type[OtherT]]
    ) -> ReplyT | OtherT: ...

    async def request(
        self, make: FrameFactory, expect: type[ReplyT] | tuple[type[ReplyT], ...]
    ) -> ReplyT:
        """Send ``make(rid)`` and return the answer, which is of type ``expect``.

        Raises :class:`Offline` without a connection, :class:`RelayError` if the relay refuses
        and :class:`UnexpectedReply` if it answers with another type."""
        ...

    async def send(self, frame: wire.Frame) -> None:
        """Send a frame that has no answer (an ``Ack``); dropped when offline."""
        ...
