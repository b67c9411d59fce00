"""What the conversation screen asks of the core besides sending and reading pages: whether a
user exists before a chat with them starts, display names (one's own, shared end to end, and the
names given to contacts on this device), a draft per conversation, a message's info (times,
each recipient device's receipts, why it failed), retrying a failed send, and searching the
history. Kept apart from the façade, which only exposes it as ``client.conversations``.
"""

from __future__ import annotations

from dataclasses import dataclass

from client.core.directory import Directory, UnknownUser
from client.core.events import StoredMessage
from client.core.outbox import Outbox
from client.core.port import Offline, RelayError
from client.core.storage import ProfileStore
from client.core.store_chat import DeviceReceipt, SearchHit, clean_name
from shared.group import group_id_of, is_group_thread


class UserCheckFailed(Exception):
    """Whether a user exists could not be learnt now (offline, or the relay refused to say)."""


@dataclass(frozen=True)
class MessageInfo:
    message: StoredMessage
    receipts: list[DeviceReceipt]  # per recipient device, as their receipts said
    failure: str | None  # why it was not sent, if it was not


class Conversations:
    def __init__(
        self, store: ProfileStore, directory: Directory, outbox: Outbox, username: str
    ) -> None:
        self._username = username
        self._store = store
        self._directory = directory
        self._outbox = outbox

    async def user_exists(self, username: str) -> bool:
        """Asks the relay for the user's signed device list (the one a first message needs
        anyway). Raises :class:`UserCheckFailed` when the answer cannot be had now."""
        if self._directory.known(username) is not None:
            return True
        try:
            await self._directory.refresh(username)
        except UnknownUser:
            return False
        except (Offline, RelayError) as exc:
            raise UserCheckFailed(str(exc) or "the relay is not reachable") from None
        return True

    def display_name(self, username: str) -> str:
        """How ``username`` is shown: the name this user gave them on this device, else the
        name they chose and shared, else the username; for a group's thread, the group's name."""
        if is_group_thread(username):
            state = self._store.group(group_id_of(username))
            return state.name if state is not None else "Group"
        return self._store.display_name(username) or self._store.shared_name(username) or username

    def set_display_name(self, username: str, name: str) -> None:
        """A name for a contact, kept on this device only (the relay and the contact never see
        it); an empty name goes back to the one they chose, or their username."""
        name = clean_name(name)
        with self._store.transaction():
            self._store.set_display_name(username, "" if name == username else name)

    @property
    def own_name(self) -> str:
        return self._store.shared_name(self._username) or ""

    def set_own_name(self, name: str) -> None:
        """The name this user is shown by: kept, and sent end to end to this user's other
        devices and every contact (the relay sees one more padded envelope, not the name)."""
        name = clean_name(name)
        with self._store.transaction():
            self._store.set_shared_name(self._username, name)
        self._outbox.share_name(self._store.threads(), name)

    def introduce(self, peer: str) -> None:
        """Before writing to ``peer``: send them this user's name if they do not have it yet."""
        name = self.own_name
        if name and peer != self._username and self._store.name_sent(peer) != name:
            self._outbox.share_name([peer], name)

    def unread(self, thread: str) -> list[bytes]:
        return self._store.unread(thread)

    def draft(self, thread: str) -> str:
        return self._store.draft(thread)

    def save_draft(self, thread: str, body: str) -> None:
        with self._store.transaction():
            self._store.set_draft(thread, body)

    def info(self, message_id: bytes) -> MessageInfo | None:
        message = self._store.message(message_id)
        if message is None:
            return None
        return MessageInfo(
            message, self._store.receipts(message_id), self._store.send_failure(message_id)
        )

    def failure(self, message_id: bytes) -> str | None:
        return self._store.send_failure(message_id)

    def retry(self, message_id: bytes) -> bool:
        """Send a failed message again (see :meth:`Outbox.retry`). Not one with an attachment
        (False): its file is sent again by attaching it again."""
        if self._store.attachment(message_id) is not None:
            return False
        return self._outbox.retry(message_id)

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        return self._store.search(text, limit)
