"""Offering accepted messages again (PROTOCOL.md §5, "Unconfirmed messages are offered again").

The outbox keeps every message the relay accepted, with exactly what it sent — a pairwise
message's envelopes, or a group message's ``GroupSend`` (:class:`GroupFanOut`) — until a
recipient device confirms it (in a group, every other member). After each login it sends each
again under the same ``send_id``: a relay that still has it answers the original ``Accepted`` and
queues nothing; one that lost it (a power loss, a restore from an older copy) queues the same
bytes again, so a dropped copy leaves no gap in anyone's ratchet or sender-key chain. If the
devices changed meanwhile (``Mismatch``), the message is queued to be encrypted again for the
current ones. Placing the answers in this device's order stays with the outbox."""

from __future__ import annotations

import functools
import logging

import msgspec

from client.core.context import ClientContext
from client.core.events import MessageStatus
from client.core.port import RelayError
from client.core.store_outbox import Unconfirmed
from shared import wire
from shared.group import is_group_thread

log = logging.getLogger("ariadne.client")


class GroupFanOut(msgspec.Struct, frozen=True, array_like=True):
    """What a group item's accepted ``GroupSend`` carried: offered again as it was, like a
    pairwise message's envelopes (the same bytes, under the same ``send_id``)."""

    payload: bytes
    recipients: list[wire.GroupRecipient]


_FAN_OUT = msgspec.msgpack.Decoder(list[wire.RecipientEnvelopes])
_GROUP_FAN_OUT = msgspec.msgpack.Decoder(GroupFanOut)


def unconfirmed(ctx: ClientContext, message_id: bytes) -> bool:
    """Whether no recipient device has confirmed the message yet (a receipt can overtake the
    relay's answer)."""
    message = ctx.store.message(message_id)
    return message is not None and message.status.rank < MessageStatus.DELIVERED.rank


def _frame(rid: int, kept: Unconfirmed) -> wire.Frame:
    if is_group_thread(kept.users[0]):
        group = _GROUP_FAN_OUT.decode(kept.fan_out)
        return wire.GroupSend(
            rid=rid, send_id=kept.send_id, payload=group.payload, recipients=group.recipients
        )
    return wire.Send(rid=rid, send_id=kept.send_id, recipients=_FAN_OUT.decode(kept.fan_out))


async def offer_each(ctx: ClientContext, accepted: list[tuple[bytes, int]]) -> None:
    """Offer every kept message again, oldest first; each the relay accepts goes into
    ``accepted`` with its time (also when a later one fails)."""
    for kept in ctx.store.unconfirmed():
        if not unconfirmed(ctx, kept.message_id):
            with ctx.store.transaction():
                ctx.store.confirmed(kept.message_id)
            continue
        try:
            answer = await ctx.port.request(
                functools.partial(_frame, kept=kept), expect=(wire.Accepted, wire.Mismatch)
            )
        except RelayError as exc:
            if exc.code in (wire.ErrorCode.QUEUE_FULL, wire.ErrorCode.RATE_LIMITED):
                return  # offered again after the next reconnect
            log.warning("the relay refuses an unconfirmed message again: %s", exc.code)
            with ctx.store.transaction():
                ctx.store.confirmed(kept.message_id)
            continue
        if isinstance(answer, wire.Accepted):
            accepted.append((kept.message_id, answer.server_ts))
            continue
        # The devices changed since: encrypt it again for the current ones (a device that has it
        # already shows it once, by its message id).
        with ctx.store.transaction():
            ctx.store.confirmed(kept.message_id)
            ctx.store.enqueue(kept.users, kept.payload, kept.message_id)
