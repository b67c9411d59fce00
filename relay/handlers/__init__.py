"""The relay's request handlers, one module per concern, and the dispatch table over them.

Each handler is a coroutine function of (session, frame) that returns the reply, or ``None`` when
the reply comes later or not at all (a fan-out is answered after its commit; an ``Ack`` gets no
answer). A frame type missing from :data:`HANDLERS` is answered ``unsupported``.
"""

from __future__ import annotations

from relay.handlers import (
    blobs,
    controls,
    delivery,
    devices,
    fan_out_scope,
    groups,
    history,
    inspect,
    rebuild,
    vault,
)
from relay.session import Handler, Reject, Session
from shared import wire
from shared.wire import ErrorCode


async def already_logged_in(session: Session, frame: wire.ClientFrame) -> None:
    raise Reject(ErrorCode.ALREADY_LOGGED_IN)


HANDLERS: dict[type, Handler] = {
    **delivery.HANDLERS,
    **devices.HANDLERS,
    **history.HANDLERS,
    **vault.HANDLERS,
    **inspect.HANDLERS,
    **controls.HANDLERS,
    **blobs.HANDLERS,
    **groups.HANDLERS,
    **rebuild.HANDLERS,
    wire.Send: fan_out_scope.send,  # delivery.send, in its devices' scope on a shared store
    wire.CreateAccount: already_logged_in,
    wire.AddDevice: already_logged_in,
    wire.Resume: already_logged_in,
}
