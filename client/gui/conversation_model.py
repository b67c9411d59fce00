"""One conversation as a Qt list model: the newest page first, older pages as the user scrolls up.

Opening a conversation reads one page from the profile database, never the whole history;
``fetchMore`` (driven by the view when the user reaches the top) prepends the page before it.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from client.core.client import AriadneClient
from client.core.events import DeliveryUpdated, StoredMessage

PAGE = 200
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

    # ---------------------------------------------------------------- lazy history

    def canFetchMore(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._exhausted and bool(self._messages)

    def fetchMore(self, parent: _Index = QModelIndex()) -> None:  # noqa: B008
        oldest = self._messages[0]
        if oldest.server_ts is None:
            self._exhausted = True
            return
        older = self.client.messages(
            self.thread, limit=PAGE, before=(oldest.server_ts, oldest.message_id)
        )
        self._exhausted = len(older) < PAGE
        if older:
            self.beginInsertRows(QModelIndex(), 0, len(older) - 1)
            self._messages[:0] = older
            self._reindex()
            self.endInsertRows()

    # ---------------------------------------------------------------- live updates

    def add(self, message: StoredMessage) -> None:
        if message.thread != self.thread or message.message_id in self._row_of:
            return
        key = _order(message)
        row = len(self._messages)
        while row > 0 and _order(self._messages[row - 1]) > key:
            row -= 1
        self.beginInsertRows(QModelIndex(), row, row)
        self._messages.insert(row, message)
        self._reindex()
        self.endInsertRows()

    def update(self, event: DeliveryUpdated) -> None:
        row = self._row_of.get(event.message_id)
        if row is None:
            return
        old = self._messages[row]
        new = StoredMessage(
            old.message_id,
            old.thread,
            old.sender_user,
            old.sender_device,
            old.sent_at,
            event.server_ts,
            old.body,
            event.status,
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
