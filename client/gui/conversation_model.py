"""One conversation as a Qt list model over a sliding window of the history.

Opening a conversation reads one page (the newest) from the profile database, never the whole
history. Scrolling up prepends the page before the window (:meth:`fetch_older`); the window holds
at most ``WINDOW`` rows, so the newest page is dropped again and fetched back when the user
scrolls down (:meth:`fetch_newer`). Layout work and memory therefore stay the same for 100 or
100,000 messages.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from client.core.client import AriadneClient
from client.core.events import DeliveryUpdated, StoredMessage

PAGE = 100
WINDOW = 4 * PAGE
MessageRole = Qt.ItemDataRole.UserRole + 1

_Index = QModelIndex | QPersistentModelIndex


def _order(message: StoredMessage) -> tuple[int, bytes]:
    return (message.server_ts if message.server_ts is not None else 2**63 - 1, message.message_id)


class ConversationModel(QAbstractListModel):
    def __init__(self, client: AriadneClient, thread: str) -> None:
        super().__init__()
        self.client = client
        self.thread = thread
        self._messages: list[StoredMessage] = client.messages(thread, limit=PAGE)
        self._row_of: dict[bytes, int] = {}
        self._reindex()
        self._exhausted = len(self._messages) < PAGE
        self.has_newer = False  # rows after the window exist (dropped while scrolled up)

    def _reindex(self) -> None:
        self._row_of = {m.message_id: row for row, m in enumerate(self._messages)}

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._messages)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        message = self._messages[index.row()]
        if role == MessageRole:
            return message
        if role == Qt.ItemDataRole.DisplayRole:
            return "couldn't decrypt this message" if message.undecryptable else message.body
        return None

    def message_at(self, row: int) -> StoredMessage:
        return self._messages[row]

    def row_of(self, message_id: bytes) -> int | None:
        return self._row_of.get(message_id)

    # ---------------------------------------------------------------- lazy history

    def can_fetch_older(self) -> bool:
        return not self._exhausted and bool(self._messages)

    def older_available(self) -> None:
        """Older messages were stored meanwhile (loaded from the mailbox): look again."""
        self._exhausted = False

    def fetch_older(self) -> int:
        """Prepend the page before the window; returns how many rows came in."""
        oldest = self._messages[0]
        if oldest.server_ts is None:
            self._exhausted = True
            return 0
        older = self.client.messages(
            self.thread, limit=PAGE, before=(oldest.server_ts, oldest.message_id)
        )
        self._exhausted = len(older) < PAGE
        if older:
            self.beginInsertRows(QModelIndex(), 0, len(older) - 1)
            self._messages[:0] = older
            self.endInsertRows()
            self._trim(keep_top=True)
            self._reindex()
        return len(older)

    def fetch_newer(self) -> int:
        """Append the page after the window (after scrolling back down); returns the count."""
        if not self.has_newer or not self._messages:
            return 0
        newest = self._messages[-1]
        newer = self.client.messages_after(self.thread, _order(newest), PAGE)
        self.has_newer = len(newer) == PAGE
        if newer:
            first = len(self._messages)
            self.beginInsertRows(QModelIndex(), first, first + len(newer) - 1)
            self._messages.extend(newer)
            self.endInsertRows()
            self._trim(keep_top=False)
            self._reindex()
        return len(newer)

    def _trim(self, keep_top: bool) -> None:
        excess = len(self._messages) - WINDOW
        if excess <= 0:
            return
        if keep_top:  # drop the newest rows; they come back through fetch_newer
            start = len(self._messages) - excess
            self.beginRemoveRows(QModelIndex(), start, len(self._messages) - 1)
            del self._messages[start:]
            self.endRemoveRows()
            self.has_newer = True
        else:  # drop the oldest rows; they come back through fetch_older
            self.beginRemoveRows(QModelIndex(), 0, excess - 1)
            del self._messages[:excess]
            self.endRemoveRows()
            self._exhausted = False

    # ---------------------------------------------------------------- live updates

    def add(self, message: StoredMessage) -> None:
        if message.thread != self.thread or message.message_id in self._row_of:
            return
        if self.has_newer and self._messages and _order(message) > _order(self._messages[-1]):
            return  # beyond the window: it is read back with the newer pages
        key = _order(message)
        row = len(self._messages)
        while row > 0 and _order(self._messages[row - 1]) > key:
            row -= 1
        self.beginInsertRows(QModelIndex(), row, row)
        self._messages.insert(row, message)
        self._reindex()
        self.endInsertRows()

    def refresh(self, message_id: bytes) -> None:
        """Repaint a message whose surroundings changed (a note on why it waits)."""
        row = self._row_of.get(message_id)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [MessageRole])

    def update(self, event: DeliveryUpdated) -> None:
        row = self._row_of.get(event.message_id)
        if row is None:
            return
        old = self._messages[row]
        new = StoredMessage(
            message_id=old.message_id,
            thread=old.thread,
            sender_user=old.sender_user,
            sender_device=old.sender_device,
            sent_at=old.sent_at,
            server_ts=event.server_ts,
            body=old.body,
            status=event.status,
        )
        if _order(new) != _order(old):  # it just got its place in the relay's order
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._messages[row]
            self._reindex()
            self.endRemoveRows()
            self.add(new)
            return
        self._messages[row] = new
        index = self.index(row)
        self.dataChanged.emit(index, index, [MessageRole])

    # ---------------------------------------------------------------- controls

    def reread(self, message_ids: tuple[bytes, ...]) -> None:
        """Controls changed these messages in place (unsent, edited, reacted to)."""
        for message_id in message_ids:
            row = self._row_of.get(message_id)
            fresh = self.client.message(message_id)
            if row is None or fresh is None:
                continue
            self._messages[row] = fresh
            index = self.index(row)
            self.dataChanged.emit(index, index, [MessageRole])

    def remove(self, message_ids: tuple[bytes, ...]) -> None:
        """Deleted or expired: rows go in contiguous runs, one model signal per run."""
        rows = sorted(r for m in message_ids if (r := self._row_of.get(m)) is not None)
        while rows:
            last = rows.pop()
            first = last
            while rows and rows[-1] == first - 1:
                first = rows.pop()
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._messages[first : last + 1]
            self.endRemoveRows()
        self._reindex()
