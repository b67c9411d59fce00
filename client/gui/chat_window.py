"""The main window of one device: conversations on the left, the open conversation on the right,
a composer at the bottom and the relay connection in the status bar."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from client.core.at_rest import KeyPlace
from client.core.client import AriadneClient
from client.core.events import (
    ConnectionState,
    ConnectionStateChanged,
    DeliveryUpdated,
    HistoryLoaded,
    RelayLimitReached,
    SendDeferred,
    StoredMessage,
)
from client.gui.bridge import CoreBridge
from client.gui.bubbles import BubbleDelegate, clock
from client.gui.contact_panel import ContactPanel, OwnDevicesPanel
from client.gui.conversation_model import ConversationModel
from client.gui.server_view import ServerView

THREAD_ROLE = Qt.ItemDataRole.UserRole + 1

UNKNOWN_TO_RELAY = (
    "The relay does not know this device — it may have lost its data. Everything on this "
    "device is kept; what you write waits here until the relay knows it again."
)
CONNECTION_TEXT = {
    ConnectionState.CONNECTING: "Connecting to the relay…",
    ConnectionState.ONLINE: "Online",
    ConnectionState.OFFLINE: "Relay unreachable — retrying",
    ConnectionState.FAILED: "The relay refused this device",
    ConnectionState.CLOSED: "Closed",
}

# What the status bar says about this device's data at rest (the tooltip says why).
AT_REST_TEXT = {
    KeyPlace.KEYRING: (
        "Encrypted on this device",
        "Messages and keys on this device are encrypted; the key is in the system keyring.",
    ),
    KeyPlace.FILE: (
        "⚠ Encryption key stored beside the data",
        "No system keyring was found, so the key that encrypts this device's messages and keys "
        "is stored in the same folder: they are protected only by that folder's permissions.",
    ),
    KeyPlace.NONE: (
        "⚠ Not encrypted on this device",
        "Messages and keys on this device are stored unencrypted.",
    ),
}


class Composer(QPlainTextEdit):
    """Enter sends; Shift+Enter starts a new line."""

    submitted = Signal(str)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            text = self.toPlainText()
            if text.strip():
                self.submitted.emit(text)
                self.clear()
            return
        super().keyPressEvent(event)


class ChatWindow(QMainWindow):
    closed = Signal()

    def __init__(self, client: AriadneClient, restoring: bool = False) -> None:
        """``restoring``: this device is new to its history (restored or just approved), so
        load all of it in the background as soon as the mailbox shows what there is."""
        super().__init__()
        self.client = client
        self._restoring = restoring
        self.bridge = CoreBridge(client, self)
        self.setWindowTitle(f"Ariadne — {client.username} ({client.device_name})")
        self.resize(760, 560)
        self.model: ConversationModel | None = None
        self._pending: set[asyncio.Future[object]] = set()

        self.threads = QListWidget()
        self.threads.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.threads.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.threads.setMinimumWidth(170)
        self.threads.currentItemChanged.connect(
            lambda item, _: self.open_thread(item.data(THREAD_ROLE) if item else "")
        )
        self.new_chat = QLineEdit(placeholderText="Start a chat with… (username)")
        self.new_chat.returnPressed.connect(self._start_chat)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 6, 6)
        left_layout.addWidget(self.new_chat)
        left_layout.addWidget(self.threads)
        my_devices = QPushButton("My devices")
        my_devices.clicked.connect(self.show_own_devices)
        left_layout.addWidget(my_devices)
        self.recovery_button = QPushButton("New recovery code…")
        self.recovery_button.clicked.connect(self.show_recovery)
        self.recovery_button.setEnabled(client.holds_account_key)
        left_layout.addWidget(self.recovery_button)

        self.header = QLabel("No conversation open")
        self.header.setObjectName("header")
        self.server_button = QPushButton("What the relay sees")
        self.server_button.setEnabled(False)
        self.server_button.clicked.connect(self.show_server_view)
        self.server_view: ServerView | None = None
        self.contact_button = QPushButton("Safety number")
        self.contact_button.setEnabled(False)
        self.contact_button.clicked.connect(self.show_contact)
        self.panel: QWidget | None = None
        header_row = QHBoxLayout()
        header_row.addWidget(self.header, 1)
        header_row.addWidget(self.contact_button)
        header_row.addWidget(self.server_button)
        self.view = QListView()
        self.view.setItemDelegate(BubbleDelegate(client.username, client.send_notes.get))
        self.view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.view.setUniformItemSizes(False)
        self.view.setSelectionMode(QListView.SelectionMode.NoSelection)
        self.view.setWordWrap(True)
        self.view.verticalScrollBar().valueChanged.connect(self._maybe_load_older)
        self.composer = Composer(placeholderText="Write a message — Enter sends")
        self.composer.setFixedHeight(64)
        self.composer.submitted.connect(self.send)
        self.composer.setEnabled(False)
        send_button = QPushButton("Send")
        send_button.clicked.connect(lambda: self.send(self.composer.toPlainText()))
        bottom = QHBoxLayout()
        bottom.addWidget(self.composer)
        bottom.addWidget(send_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 6)
        right_layout.addLayout(header_row)
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel#banner { background: #fff3cd; color: #5c4400; padding: 8px;"
            " border-radius: 6px; }"
        )
        self.banner_button = QPushButton("")
        self.banner_button.clicked.connect(self._banner_action)
        banner_row = QHBoxLayout()
        banner_row.addWidget(self.banner, 1)
        banner_row.addWidget(self.banner_button)
        # Offered when the relay does not know this device (see rebuild_dialog).
        self.rebuild_button = QPushButton("Re-create the account…")
        self.rebuild_button.clicked.connect(self.show_rebuild)
        self.rebuild_dialog: QWidget | None = None
        banner_row.addWidget(self.rebuild_button)
        self.banner.setVisible(False)
        self.banner_button.setVisible(False)
        self.rebuild_button.setVisible(False)
        right_layout.addLayout(banner_row)
        right_layout.addWidget(self.view)
        right_layout.addLayout(bottom)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([200, 560])
        self.setCentralWidget(splitter)

        self.connection = QLabel(CONNECTION_TEXT[client.link.state])
        self.statusBar().addPermanentWidget(self.connection)
        text, explanation = AT_REST_TEXT[client.database_key_place]
        self.at_rest = QLabel(text, toolTip=explanation)
        self.statusBar().addPermanentWidget(self.at_rest)
        self.bridge.connection_changed.connect(self._on_connection)
        self.bridge.message_added.connect(self._on_message)
        self.bridge.delivery_updated.connect(self._on_delivery)
        self.bridge.history_loaded.connect(self._on_history)
        self.bridge.pairing_requested.connect(self._on_pairing_request)
        self.bridge.device_removed.connect(lambda _event: self._show_removed())
        self.bridge.contact_key_changed.connect(lambda _event: self._update_banner())
        self.bridge.send_deferred.connect(self._on_deferred)
        self.bridge.relay_limit_reached.connect(self._on_relay_limit)
        self.relay_limit = QLabel("")  # a relay quota that stops something (not a message)
        self.relay_limit.setWordWrap(True)
        self.statusBar().addWidget(self.relay_limit)
        self.approvals: dict[str, QWidget] = {}
        self.progress = QLabel("")
        self.statusBar().addWidget(self.progress)
        self._loading_older: asyncio.Future[int] | None = None
        self._backfill: asyncio.Future[int] | None = None
        for thread in client.threads():
            self._ensure_thread(thread)
        if self.threads.count():
            self.threads.setCurrentRow(0)
        if client.removed:
            self._show_removed()

    # ---------------------------------------------------------------- conversations

    def open_thread(self, thread: str) -> None:
        if not thread:
            return
        self.model = ConversationModel(self.client, thread)
        self.view.setModel(self.model)
        self.view.scrollToBottom()
        self.header.setText(f"<b>{thread}</b>")
        self.server_button.setEnabled(True)
        self.contact_button.setEnabled(True)
        self.composer.setEnabled(not self.client.removed)
        self.composer.setFocus()
        self._update_banner()
        self._mark_read()

    def _mark_read(self) -> None:
        """What is on screen in a visible window has been read."""
        if self.model is not None and self.isVisible() and not self.isMinimized():
            thread = self.model.thread
            if self.client.unread_count(thread):
                future = asyncio.ensure_future(self.client.mark_read(thread))
                self._pending.add(future)
                future.add_done_callback(self._report_failure)
            self._refresh_thread(thread)

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)
        self._mark_read()

    def open_conversation(self, peer: str) -> None:
        self._ensure_thread(peer)
        self.threads.setCurrentRow(self._row_of_thread(peer))

    def show_server_view(self) -> ServerView | None:
        if self.model is None:
            return None
        if self.server_view is not None:
            self.server_view.close()
        self.server_view = ServerView(self.client, self.model.thread)
        self.server_view.show()
        return self.server_view

    def _show_panel(self, panel: QWidget) -> QWidget:
        if self.panel is not None:
            self.panel.close()
        self.panel = panel
        panel.show()
        return panel

    def show_contact(self) -> QWidget | None:
        if self.model is None:
            return None
        return self._show_panel(ContactPanel(self.client, self.model.thread))

    def show_own_devices(self) -> QWidget:
        return self._show_panel(OwnDevicesPanel(self.client))

    # ---------------------------------------------------------------- device control

    def _on_pairing_request(self, event) -> None:  # type: ignore[no-untyped-def]
        from client.gui.pairing_dialog import ApprovalDialog

        open_dialog = self.approvals.get(event.device_id)
        if open_dialog is not None and open_dialog.isVisible():
            return
        dialog = ApprovalDialog(
            self.client, event.device_id, event.name, event.fingerprint, event.asked_at
        )
        self.approvals[event.device_id] = dialog
        dialog.show()
        # Over the window of the device that asks (not the middle of the screen, where the new
        # device's own screen, with the code to compare, may be).
        dialog.move(self.frameGeometry().center() - dialog.rect().center())

    def _show_removed(self) -> None:
        self.banner.setText(
            f"This device was removed from {self.client.username}'s account. It receives "
            "nothing any more and cannot read anything written from now on."
        )
        self.banner_button.setText("Delete local data…")
        self.banner.setVisible(True)
        self.banner_button.setVisible(True)
        self.composer.setEnabled(False)
        self.recovery_button.setEnabled(False)
        self.connection.setText("Device removed")

    def show_rebuild(self) -> QWidget:
        from client.gui.rebuild_dialog import RebuildDialog

        self.rebuild_dialog = RebuildDialog(self.client)
        self.rebuild_dialog.show()
        return self.rebuild_dialog

    def _update_banner(self) -> None:
        self.rebuild_button.setVisible(
            self.client.unknown_to_relay and self.client.holds_account_key
        )
        if self.client.removed:
            return
        if self.client.unknown_to_relay:
            # The relay's word alone: the device keeps everything and offers to try again.
            self.banner.setText(UNKNOWN_TO_RELAY)
            self.banner_button.setText("Retry")
            self.banner.setVisible(True)
            self.banner_button.setVisible(True)
            self.composer.setEnabled(self.model is not None)  # what is typed waits in the outbox
            return
        peer = self.model.thread if self.model is not None else None
        changed = peer is not None and self.client.key_changed(peer)
        if changed:
            self.banner.setText(
                f"{peer}'s safety number changed: their account key is new. Sending is paused "
                "until you acknowledge it — compare the new safety number first."
            )
            self.banner_button.setText("Acknowledge")
        self.banner.setVisible(changed)
        self.banner_button.setVisible(changed)
        self.composer.setEnabled(self.model is not None and not changed)

    def _banner_action(self) -> None:
        if self.client.removed:
            self.delete_local_data()
        elif self.client.unknown_to_relay:
            self.client.retry_connection()
        elif self.model is not None and self.client.key_changed(self.model.thread):
            self.client.acknowledge_key_change(self.model.thread)
            self.open_thread(self.model.thread)

    def delete_local_data(self, confirm: bool = True) -> None:
        from PySide6.QtWidgets import QMessageBox

        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete local data",
                "Delete every message and key this device holds? This cannot be undone.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        future = asyncio.ensure_future(self.client.delete_local_data())
        self._pending.add(future)
        future.add_done_callback(lambda _f: self.close())

    def show_recovery(self) -> QWidget:
        from client.gui.recovery_dialog import RecoveryCodeDialog

        return self._show_panel(RecoveryCodeDialog(self.client))

    # ---------------------------------------------------------------- history from the mailbox

    def start_backfill(self) -> None:
        """Load the rest of the history in the background (after a restore), with progress."""
        if self._backfill is None or self._backfill.done():
            self._backfill = asyncio.ensure_future(self.client.backfill())
            self._pending.add(self._backfill)
            self._backfill.add_done_callback(self._report_failure)

    def _on_history(self, event: HistoryLoaded) -> None:
        loaded, total = self.client.history_progress()
        if self._restoring and loaded < total:
            self.start_backfill()
        if loaded < total:
            self.progress.setText(f"Restoring history… {loaded:,} of {total:,} messages")
        else:
            self.progress.setText(f"History restored: {total:,} messages")
        self._ensure_thread(event.thread)
        if self.threads.currentRow() < 0:
            self.threads.setCurrentRow(self._row_of_thread(event.thread))
        elif self.model is not None and event.thread == self.model.thread and event.added:
            if self.model.rowCount() == 0:
                self.open_thread(event.thread)
            else:
                self.model.older_available()
                if self.view.verticalScrollBar().value() == 0:
                    self._maybe_load_older(0)

    def _start_chat(self) -> None:
        username = self.new_chat.text().strip().lower()
        if not username or username == self.client.username:
            return
        self.new_chat.clear()
        self.open_conversation(username)

    def _row_of_thread(self, thread: str) -> int:
        for row in range(self.threads.count()):
            if self.threads.item(row).data(THREAD_ROLE) == thread:
                return row
        return -1

    def _ensure_thread(self, thread: str) -> None:
        if self._row_of_thread(thread) < 0:
            item = QListWidgetItem()
            item.setData(THREAD_ROLE, thread)
            self.threads.addItem(item)
        self._refresh_thread(thread)

    def _refresh_thread(self, thread: str) -> None:
        """The list entry: name, unread count, last message and its time."""
        row = self._row_of_thread(thread)
        if row < 0:
            return
        unread = self.client.unread_count(thread)
        last = self.client.last_message(thread)
        title = f"{thread}  ({unread})" if unread else thread
        if last is None:
            preview = "No messages yet"
        else:
            body = "Couldn't decrypt" if last.undecryptable else last.body.splitlines()[0]
            who = "You: " if last.sender_user == self.client.username else ""
            preview = f"{who}{body[:40]}  · {clock(last)}"
        item = self.threads.item(row)
        item.setText(f"{title}\n{preview}")
        font = item.font()
        font.setBold(bool(unread))
        item.setFont(font)

    # ---------------------------------------------------------------- sending

    def send(self, text: str) -> None:
        if self.model is None or not text.strip():
            return
        self.composer.clear()
        future = asyncio.ensure_future(self.client.send_text(self.model.thread, text))
        self._pending.add(future)
        future.add_done_callback(self._report_failure)

    def _report_failure(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self.statusBar().showMessage(f"That did not work: {future.exception()}", 5000)

    # ---------------------------------------------------------------- core events

    def _on_message(self, message: StoredMessage) -> None:
        if self.model is not None and message.thread == self.model.thread:
            at_bottom = self._at_bottom()
            self.model.add(message)
            if at_bottom or message.sender_user == self.client.username:
                self.view.scrollToBottom()
            self._mark_read()
        self._ensure_thread(message.thread)

    def _maybe_load_older(self, value: int) -> None:
        """Slide the model's window at either end, keeping the message on screen where it is.
        (Qt's own fetchMore fires only at the bottom; a chat's history grows upward.)"""
        model = self.model
        if model is None:
            return
        bar = self.view.verticalScrollBar()
        if value == 0 and not model.can_fetch_older() and self.client.has_older(model.thread):
            self._load_from_mailbox(model.thread)
            return
        if value == 0 and model.can_fetch_older():
            corner, fetch, hint = (
                self.view.viewport().rect().topLeft(),
                model.fetch_older,
                QListView.ScrollHint.PositionAtTop,
            )
        elif value == bar.maximum() and model.has_newer:
            corner, fetch, hint = (
                self.view.viewport().rect().bottomLeft(),
                model.fetch_newer,
                QListView.ScrollHint.PositionAtBottom,
            )
        else:
            return
        anchor = self.view.indexAt(corner)
        anchor_id = model.message_at(anchor.row()).message_id if anchor.isValid() else None
        fetched = fetch()
        if not fetched and value == 0 and self.client.has_older(model.thread):
            self._load_from_mailbox(model.thread)
        if fetched and anchor_id is not None:
            row = model.row_of(anchor_id)
            if row is not None:
                self.view.scrollTo(model.index(row), hint)

    def _load_from_mailbox(self, thread: str) -> None:
        """Past what this device holds: fetch the next page from the mailbox (once at a time);
        its HistoryLoaded event brings it into the view."""
        if self._loading_older is not None and not self._loading_older.done():
            return
        self.progress.setText("Loading older messages…")
        self._loading_older = asyncio.ensure_future(self.client.load_older(thread))
        self._pending.add(self._loading_older)
        self._loading_older.add_done_callback(self._report_failure)

    def _at_bottom(self) -> bool:
        bar = self.view.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def _on_delivery(self, event: DeliveryUpdated) -> None:
        if self.model is not None:
            self.model.update(event)
        self._refresh_thread(event.thread)

    def _on_deferred(self, event: SendDeferred) -> None:
        """The bubble shows why its message waits (the delegate reads ``client.send_notes``)."""
        if self.model is not None:
            self.model.refresh(event.message_id)

    def _on_relay_limit(self, event: RelayLimitReached) -> None:
        self.relay_limit.setText(event.text)

    def _on_connection(self, event: ConnectionStateChanged) -> None:
        text = CONNECTION_TEXT[event.state]
        if event.state is ConnectionState.OFFLINE and event.detail:
            text = f"{text} ({event.detail})"
        if self.client.removed:
            text = "Device removed"
        elif self.client.unknown_to_relay:
            text = "The relay does not know this device"
        self.connection.setText(text)
        self._update_banner()

    def closeEvent(self, event: QCloseEvent) -> None:
        for dialog in self.approvals.values():
            dialog.close()  # (cancels an exchange in progress)
        self.bridge.detach()
        self.closed.emit()
        super().closeEvent(event)
