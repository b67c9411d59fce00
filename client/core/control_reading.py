"""What a message's bubble shows of controls (PROTOCOL.md §10): whether it was edited and its
versions, its reactions, when it disappears, the quote of the message it replies to, and the
conversation's timer — read from this device's own copies, never re-sent by anyone.

A part of :class:`client.core.controls.Controls`, which applies the controls these read.
"""

from __future__ import annotations

from client.core.attachments import safe_name
from client.core.context import ClientContext
from client.core.store_marks import Marks
from shared.attachment import decode_pointer
from shared.errors import ProtocolError

SNIPPET = 80  # characters of the original a quote shows


class ControlReading:
    _ctx: ClientContext

    def timer(self, thread: str) -> int:
        current = self._ctx.store.timer(thread)
        return current.seconds if current else 0

    def edited(self, message_id: bytes) -> bool:
        return len(self._ctx.store.edits(message_id)) > 1

    def versions(self, message_id: bytes) -> list[str]:
        """Every version of an edited message, oldest first."""
        return [row[2] for row in self._ctx.store.edits(message_id)]

    def reactions(self, message_id: bytes) -> dict[str, str]:
        return self._ctx.store.reactions(message_id)

    def expires_at(self, message_id: bytes) -> int | None:
        """When a disappearing message goes (the relay's clock, ms); None if it stays."""
        return self._ctx.store.expiry_of(message_id)

    def marks(self, message_ids: list[bytes]) -> dict[bytes, Marks]:
        """The controls on many messages at once (a page of bubbles); see :meth:`quote` for
        the quote of a reply. Messages without controls are left out."""
        return self._ctx.store.marks_of(message_ids)

    def quote(self, message_id: bytes) -> tuple[bytes, str, str] | None:
        """(original id, its sender, a snippet of this device's own copy) for a reply; the
        snippet is empty when this device does not hold the original (or it was unsent). A
        reply quotes only a message of its own conversation: a contact naming one of another
        conversation (its id learnt from the relay) must not show a third party's words in its
        chat, so that original counts as not held."""
        original = self._ctx.store.reply_of(message_id)
        reply = self._ctx.store.message(message_id)
        if original is None or reply is None:
            return None
        message = self._ctx.store.message(original)
        if message is None or message.thread != reply.thread:
            return original, "", ""
        return original, message.sender_user, (message.body or self._file_name(original))[:SNIPPET]

    def _file_name(self, message_id: bytes) -> str:
        """What a quote of an attachment without a caption shows: the file's name."""
        row = self._ctx.store.attachment(message_id)
        if row is None or not row.pointer:
            return ""
        try:
            return f"📎 {safe_name(decode_pointer(row.pointer).name)}"
        except ProtocolError:
            return ""
