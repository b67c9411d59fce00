"""The façade's calls about messages: reading a thread (pages before or after a point, the last
message, unread counts), marking what the user saw as read, and sending a text, each to the
pairwise or the group concern its thread belongs to. A part of
:class:`client.core.client.AriadneClient`.
"""

from __future__ import annotations

from client.core.events import StoredMessage
from client.core.group_send import GroupMessages
from client.core.outbox import Outbox
from client.core.storage import ProfileStore
from shared.group import is_group_thread


class MessageCalls:
    """Mixed into the façade, which builds the concerns below."""

    outbox: Outbox
    group_messages: GroupMessages
    _store: ProfileStore

    def messages(
        self, thread: str, limit: int | None = None, before: tuple[int, bytes] | None = None
    ) -> list[StoredMessage]:
        return self._store.thread_messages(thread, limit, before)

    def messages_after(
        self, thread: str, after: tuple[int, bytes], limit: int
    ) -> list[StoredMessage]:
        return self._store.thread_messages_after(thread, after, limit)

    def threads(self) -> list[str]:
        return self._store.threads()

    def message(self, message_id: bytes) -> StoredMessage | None:
        return self._store.message(message_id)

    def unread_count(self, thread: str) -> int:
        return len(self._store.unread(thread))

    def last_message(self, thread: str) -> StoredMessage | None:
        return self._store.last_message(thread)

    async def mark_read(self, thread: str, seen: set[bytes] | None = None) -> int:
        """Mark what the user has seen in ``thread`` as read (see :meth:`Outbox.mark_read`)."""
        if is_group_thread(thread):
            return self.group_messages.mark_read(thread, seen)
        return self.outbox.mark_read(thread, seen)

    async def send_text(self, peer: str, text: str, reply_to: bytes | None = None) -> StoredMessage:
        """Store and queue a message to ``peer`` quoting ``reply_to`` (see
        :meth:`Outbox.send_text`), or to a group's thread (see :meth:`GroupMessages.send_text`)."""
        if is_group_thread(peer):
            return await self.group_messages.send_text(peer, text, reply_to)
        return await self.outbox.send_text(peer, text, reply_to)
