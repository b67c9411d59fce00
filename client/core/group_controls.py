"""Controls in group conversations (PROTOCOL.md §10 and §12): how unsend, edit, reaction and the
timer reach every member device, and how delete for me and delete conversation reach only this
account's own devices.

- **For every member** (unsend, edit, reaction, timer): a :class:`shared.group.GroupControl`
  queued under the group's thread, so the outbox encrypts it once under this device's sender key
  like a group text (:meth:`client.core.group_send.GroupMessages.send_item`), naming the
  membership it was sent for, and the relay fans the same bytes out to every member device
  (this account's other devices included). A receiver takes it only as it takes a group text:
  the sender key this device was given pairwise, a sender on a current member's verified list,
  the ``Origin`` inside equal to the relay's label, the membership checked, a replay dropped by
  the chain; then :meth:`client.core.controls.Controls.apply` applies the same rules as one to
  one (only a message's sender unsends or edits it, one reaction per member, any member sets the
  timer, the target must be in this group's conversation).
- **For this account alone** (delete for me, delete conversation): a
  :class:`shared.group.OwnControl` in a pairwise ``Group`` payload to this user's other devices,
  so no other member learns what this user deleted. A receiver takes only a deletion this
  way, and the rules apply it only if it comes from its own account.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from client.core.context import ClientContext
from client.core.events import Event
from shared.controls import Action, ClearConversation, ControlRecord, DeleteForMe
from shared.envelope import Group, encode_payload
from shared.group import GroupControl, OwnControl, encode_message, group_id_of, group_thread

if TYPE_CHECKING:  # the controls module queues through this one
    from client.core.controls import Controls

log = logging.getLogger("ariadne.client.groups")

OWN_ONLY = (DeleteForMe, ClearConversation)


def enqueue(
    ctx: ClientContext, thread: str, control_id: bytes, sent_at: int, action: Action
) -> None:
    """Queue a group control (in the caller's transaction): a deletion to this account's own
    devices, anything else to every member device under the sender key."""
    origin = ctx.origin()
    if isinstance(action, OWN_ONLY):
        body = OwnControl(
            group_id=group_id_of(thread), control_id=control_id, sent_at=sent_at, action=action
        )
        payload = Group(origin=origin, body=encode_message(body))
        ctx.store.enqueue([ctx.username], encode_payload(payload), None)
        return
    sealed = GroupControl(
        origin=origin,
        control_id=control_id,
        sent_at=sent_at,
        action=action,
        seq=0,  # set when it leaves: the membership it is encrypted for
        head=bytes(32),
    )
    ctx.store.enqueue([thread], encode_message(sealed), None)


class GroupControls:
    """Takes group controls that arrived; the checks of the transport are the caller's."""

    def __init__(self, ctx: ClientContext, controls: Controls) -> None:
        self._ctx = ctx
        self._controls = controls

    def take_sealed(self, thread: str, control: GroupControl, server_ts: int) -> list[Event]:
        """A control opened with a member's sender key (its origin, membership and freshness
        already checked by :mod:`client.core.group_send`). A deletion here is refused by the
        rules unless it is this account's own."""
        record = ControlRecord(
            control_id=control.control_id,
            thread=thread,
            sender_user=control.origin.user,
            sender_device=control.origin.device,
            sent_at=control.sent_at,
            action=control.action,
        )
        return self._controls.apply(record, server_ts)

    def take_own(
        self, sender_user: str, sender_device: str, control: OwnControl, server_ts: int
    ) -> list[Event]:
        """A deletion from this account's other device (pairwise: the session authenticated
        the sender; the rules refuse a deletion from any other account). Anything else is
        refused here: it would bypass the group's membership checks."""
        if not isinstance(control.action, OWN_ONLY):
            log.info("dropped a group control for every member sent pairwise")
            return []
        record = ControlRecord(
            control_id=control.control_id,
            thread=group_thread(control.group_id),
            sender_user=sender_user,
            sender_device=sender_device,
            sent_at=control.sent_at,
            action=control.action,
        )
        return self._controls.apply(record, server_ts)
