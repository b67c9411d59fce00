"""The main window of one device: conversations on the left, the open conversation on the right,
a composer at the bottom and the relay connection in the status bar."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.events import (
    ConnectionStateChanged,
    DisplayNameChanged,
    MessageStatus,
    RelayLimitReached,
    StoredMessage,
)
from client.core.groups import is_group_thread
from client.gui import control_actions, message_menu
from client.gui.attachments import AttachmentController
from client.gui.bridge import CoreBridge
from client.gui.bubbles import BubbleDelegate
from client.gui.chat_header import ChatHeader
from client.gui.composer import Composer, LengthCounter
from client.gui.composing import Composing
from client.gui.contact_panel import ContactPanel, OwnDevicesPanel
from client.gui.control_bar import ConversationControls
from client.gui.conversation_feed import ConversationFeed
from client.gui.conversation_model import ConversationModel
from client.gui.device_control import DeviceControl
from client.gui.group_panel import MemberPanel, NewGroupDialog, sender_names
from client.gui.keyboard import focus_field, install_shortcuts
from client.gui.message_menu import MenuContext, build_menu
from client.gui.onboarding import Onboarding
from client.gui.panels import PanelHost
from client.gui.read_state import visible_unread
from client.gui.relay_alerts import RelayAlertBanner
from client.gui.server_view import ServerView
from client.gui.settings_panel import SettingsPanel
from client.gui.sidebar import menu_button
from client.gui.status_texts import AT_REST_TEXT, CONNECTION_TEXT, connection_text
from client.gui.thread_list import ThreadList
from client.gui.tray import Notifier


class ChatWindow(ThreadList, DeviceControl, ConversationFeed, Composing, QMainWindow):
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
        self._read_timer = QTimer(self, singleShot=True, interval=0)
        self._read_timer.timeout.connect(self._mark_read)
        self._pending: set[asyncio.Future[object]] = set()

        left, left_layout = self._left_column()

        self.identity = ChatHeader(client)
        self.header = self.identity.name
        self.identity.renamed.connect(self._refresh_thread)
        self.server_button = QPushButton("What the relay sees")
        self.server_button.setFlat(True)
        self.server_button.setEnabled(False)
        self.server_button.clicked.connect(self.show_server_view)
        self.server_view: ServerView | None = None
        self._opened: QWidget | None = None  # the panel last opened here (a new one replaces it)
        self.view = QListView()
        self.controls = ConversationControls(client, self.view)
        self.contact_action = QAction("Safety number…", self)
        self.contact_action.setEnabled(False)
        self.contact_action.triggered.connect(self.show_contact)
        # One row: who, the timer, then what is used often; the rest (and anything that
        # destroys) behind ⋮, never one click away.
        self.chat_menu = menu_button(
            "Safety number, delete conversation",
            "Conversation menu",
            [self.contact_action, self.controls.delete_action],
        )
        header_row = QHBoxLayout()
        header_row.setSpacing(4)  # the demo's window is narrow: room for a panel beside
        header_row.addWidget(self.identity, 1)
        header_row.addWidget(self.controls.timer)
        header_row.addWidget(self.server_button)
        header_row.addWidget(self.chat_menu)
        self._set_up_view()  # the bubbles, paging and following
        self.composer = Composer(placeholderText="Write a message — Enter sends")
        self.composer.setFixedHeight(64)
        self.composer.submitted.connect(self.send)
        self.composer.setEnabled(False)
        self.send_button = send_button = QPushButton("Send")
        send_button.clicked.connect(lambda: self.send(self.composer.toPlainText()))
        bottom = QHBoxLayout()
        bottom.addWidget(self.composer)
        bottom.addWidget(send_button)
        self.counter = LengthCounter(self.composer)
        self.counter.split_requested.connect(self.send_parts)
        self._draft_thread: str | None = None  # whose draft the composer holds
        self._draft_timer = QTimer(self, singleShot=True, interval=400)
        self._draft_timer.timeout.connect(self._save_draft)
        self.composer.textChanged.connect(self._draft_timer.start)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 6)
        right_layout.addLayout(header_row)
        banner_row = self._banner_row()
        right_layout.addLayout(banner_row)
        self.relay_alert = RelayAlertBanner(client)  # the relay caught misbehaving
        right_layout.addWidget(self.relay_alert)
        right_layout.addWidget(self.view)
        right_layout.addWidget(self.counter)
        right_layout.addWidget(self.controls.reply_bar)
        self.attachments = AttachmentController(self)  # attach, preview, thumbnails, transfers
        right_layout.addWidget(self.attachments.bar)
        right_layout.addLayout(bottom)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        self.panels = PanelHost(self)  # dialogs open here, beside the conversation
        splitter.addWidget(self.panels)
        splitter.setCollapsible(2, False)
        splitter.setSizes([200, 560, 0])
        self.setCentralWidget(splitter)

        self.connection = QLabel(CONNECTION_TEXT[client.link.state])
        self.statusBar().addPermanentWidget(self.connection)
        text, explanation = AT_REST_TEXT[client.database_key_place]
        self.at_rest = QLabel(text, toolTip=explanation)
        self.statusBar().addPermanentWidget(self.at_rest)
        self.bridge.connection_changed.connect(self._on_connection)
        self.bridge.group_changed.connect(lambda event: self._on_group_changed(event.thread))
        self.bridge.message_added.connect(self._on_message)
        self.bridge.delivery_updated.connect(self._on_delivery)
        self.bridge.history_loaded.connect(self._on_history)
        self.bridge.pairing_requested.connect(self._on_pairing_request)
        self.bridge.device_removed.connect(lambda _event: self._show_removed())
        self.bridge.contact_key_changed.connect(lambda _event: self._update_banner())
        self.bridge.send_deferred.connect(self._on_deferred)
        self.bridge.relay_limit_reached.connect(self._on_relay_limit)
        self.bridge.messages_changed.connect(self._on_controls)
        self.bridge.messages_removed.connect(self._on_controls)
        self.bridge.timer_changed.connect(self.controls.on_timer)
        self.bridge.display_name_changed.connect(self._on_name)
        self.relay_limit = QLabel("")  # a relay quota that stops something (not a message)
        self.relay_limit.setWordWrap(True)
        self.statusBar().addWidget(self.relay_limit)
        self.approvals: dict[str, QWidget] = {}
        self.progress = QLabel("")
        self.statusBar().addWidget(self.progress)
        self.onboarding = Onboarding(self, left_layout, right_layout)
        self.notifier = Notifier(self, client, self.bridge)
        for thread in client.threads():
            self._ensure_thread(thread)
        if self.threads.count():
            self.threads.setCurrentRow(0)
        if client.removed:
            self._show_removed()
        self.shortcuts = install_shortcuts(self, self, self.view)
        self._highlight_timer = QTimer(self, singleShot=True, interval=2500)
        self._highlight_timer.timeout.connect(self._clear_highlight)

    # ---------------------------------------------------------------- conversations

    def open_thread(self, thread: str) -> None:
        if not thread:
            return
        self._save_draft()
        self._draft_thread = thread
        self.composer.setPlainText(self.client.conversations.draft(thread))
        self.composer.moveCursor(QTextCursor.MoveOperation.End)
        self._draft_timer.stop()
        self.model = ConversationModel(self.client, thread)
        self.view.setModel(self.model)
        self.controls.show_conversation(self.model)
        self.view.scrollToBottom()
        self.identity.show_peer(thread)
        group = is_group_thread(thread)
        self.bubbles.sender_name = sender_names(self.client) if group else None
        self.server_button.setEnabled(not group)
        self.contact_action.setText("Members…" if group else "Safety number…")
        self.contact_action.setEnabled(True)
        self.composer.setEnabled(not self.client.removed)
        self.composer.setFocus()
        self._update_banner()
        self._mark_read_soon()

    def _mark_read(self) -> None:
        """Read means: this window is the active one (not minimised, not behind another), the
        conversation is open, and the message has been scrolled into view."""
        if self.model is None or not self.isActiveWindow() or self.isMinimized():
            return
        seen = visible_unread(
            self.view, self.model, self.client.conversations.unread(self.model.thread)
        )
        if seen:
            future = asyncio.ensure_future(self.client.mark_read(self.model.thread, seen))
            self._pending.add(future)
            future.add_done_callback(self._report_failure)
            future.add_done_callback(lambda _f, t=self.model.thread: self._refresh_thread(t))

    def _mark_read_soon(self) -> None:
        """After the view has laid out what just changed (once for a burst of scrolling)."""
        self._read_timer.start()

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)
        self._mark_read_soon()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ActivationChange, QEvent.Type.WindowStateChange):
            self._mark_read_soon()

    def open_conversation(self, peer: str) -> None:
        self._ensure_thread(peer)
        self.threads.setCurrentRow(self._row_of_thread(peer))

    def show_server_view(self) -> ServerView | None:
        if self.model is None:
            return None
        if self.server_view is not None:
            self.server_view.close()
        self.server_view = ServerView(self.client, self.model.thread)
        self.panels.show_panel(self.server_view)
        return self.server_view

    @property
    def panel(self) -> QWidget | None:
        """The panel on top of the window's pane (the one Esc closes), if one is open."""
        return self.panels.top

    def _show_panel(self, panel: QWidget) -> QWidget:
        """Open a panel the user asked for, in place of the last one they asked for; a panel
        that came by itself (a device asking to be approved) stays underneath."""
        if self._opened is not None and self._opened in self.panels.panels:
            self._opened.close()
        self._opened = panel
        return self.panels.show_panel(panel)

    # ---------------------------------------------------------------- keyboard and search

    def jump_to_chat(self) -> None:
        focus_field(self.new_chat)

    def open_search(self) -> None:
        self.threads.setVisible(False)
        self.search.open()

    def close_panels(self) -> None:
        """Esc: close the search if it is open, else the top panel (the one below shows: an
        approval under it is not cancelled by the same key press); back to the composer."""
        if self.search.isVisible():
            self.search.close_search()
        else:
            self.panels.close_top()
        if self.new_chat.hasFocus():
            self.new_chat.clear()
        if self.composer.isEnabled():
            self.composer.setFocus()

    def jump_to(self, message: StoredMessage) -> None:
        """Open ``message``'s conversation at it (a search result), and mark it for a moment."""
        self.open_conversation(message.thread)
        if self.model is None:
            return
        row = self.model.centre_on(message)
        if row is None:
            return
        index = self.model.index(row)
        self.view.scrollTo(index, QListView.ScrollHint.PositionAtCenter)
        self.view.setCurrentIndex(index)
        delegate = self.view.itemDelegate()
        if isinstance(delegate, BubbleDelegate):
            delegate.highlight = message.message_id
            self.view.viewport().update()
            self._highlight_timer.start()

    def _clear_highlight(self) -> None:
        delegate = self.view.itemDelegate()
        if isinstance(delegate, BubbleDelegate):
            delegate.highlight = None
            self.view.viewport().update()

    def show_panel(self, panel: QWidget) -> QWidget:
        return self._show_panel(panel)

    # ---------------------------------------------------------------- a message's menu

    def message_menu(self, row: int) -> QMenu | None:
        """The menu of the message in ``row`` of the open conversation (see message_menu)."""
        if self.model is None or not 0 <= row < self.model.rowCount():
            return None
        context = MenuContext(self.model.message_at(row), self.client, self)
        return build_menu(context, [*message_menu.ACTIONS, *control_actions.ACTIONS], self)

    def _menu_at(self, point: QPoint) -> None:
        menu = self.message_menu(self.view.indexAt(point).row())
        if menu is not None:
            menu.popup(self.view.viewport().mapToGlobal(point))

    def menu_for_current(self) -> None:
        """The Menu key or Shift+F10: the menu of the message the keyboard is on."""
        index = self.view.currentIndex()
        if index.isValid():
            self._menu_at(self.view.visualRect(index).center())

    def _on_bubble_clicked(self, index: QModelIndex) -> None:
        """A click on a message that was not sent sends it again (its bubble says so)."""
        if self.model is None or not index.isValid():
            return
        message = self.model.message_at(index.row())
        if message.sender_user == self.client.username and message.status is MessageStatus.FAILED:
            self.retry(message.message_id)
        else:
            self.controls.jump_to_quote(index)

    def start_reply(self, message: StoredMessage) -> None:
        self.controls.start_reply(message)
        self.composer.setFocus()

    def report(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def show_contact(self) -> QWidget | None:
        if self.model is None:
            return None
        if is_group_thread(self.model.thread):
            return self._show_panel(MemberPanel(self.client, self.model.thread))
        panel = ContactPanel(self.client, self.model.thread)
        if hasattr(panel, "verify"):  # the badge follows the verified mark
            panel.verify.toggled.connect(lambda _on: self.identity.refresh())
        return self._show_panel(panel)

    def show_new_group(self) -> NewGroupDialog:
        dialog = NewGroupDialog(self.client)
        dialog.created.connect(self.open_conversation)
        self._show_panel(dialog)
        return dialog

    def _on_group_changed(self, thread: str) -> None:
        self._ensure_thread(thread)
        if self.model is not None and self.model.thread == thread:
            self.identity.refresh()

    def show_own_devices(self) -> QWidget:
        return self._show_panel(OwnDevicesPanel(self.client))

    def show_settings(self) -> QWidget:
        return self._show_panel(SettingsPanel(self.client))

    def _chat_chosen(self, username: str) -> None:
        self.open_conversation(username)
        if self.composer.isEnabled():
            self.composer.setFocus()

    # ---------------------------------------------------------------- core events

    def _on_name(self, event: DisplayNameChanged) -> None:
        self._refresh_thread(event.username)
        if self.identity.peer == event.username:
            self.identity.refresh()
        if event.username == self.client.username and not self.own_name.hasFocus():
            self.own_name.setText(self.client.conversations.own_name)
            self.own_name.setCursorPosition(0)
            self.own_bar.refresh()

    def _on_relay_limit(self, event: RelayLimitReached) -> None:
        self.relay_limit.setText(event.text)

    def _on_connection(self, event: ConnectionStateChanged) -> None:
        self.connection.setText(connection_text(self.client, event))
        self._update_banner()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._draft_timer.stop()
        self._save_draft()
        for dialog in self.approvals.values():
            dialog.close()  # (cancels an exchange in progress)
        self.bridge.detach()
        self.relay_alert.detach()
        self.closed.emit()
        super().closeEvent(event)
