"""What the open conversation's view shows as things happen: messages arriving, their delivery
and changes (edits, unsends, deletions), pages of history read from the profile as the user
scrolls either way or loaded from the mailbox (and all of it after a restore, with progress),
and following the newest message while the view is at the bottom. A part of
:class:`~client.gui.chat_window.ChatWindow`, kept apart to keep each concern readable; it uses
the window's widgets."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QListView, QListWidget

from client.core.client import AriadneClient
from client.core.events import (
    DeliveryUpdated,
    HistoryLoaded,
    MessagesChanged,
    MessagesRemoved,
    SendDeferred,
    StoredMessage,
)
from client.gui import control_actions
from client.gui.attachment_bubbles import AttachmentDelegate
from client.gui.bubble_measures import HEIGHTS_KEPT
from client.gui.conversation_model import ConversationModel
from client.gui.decorations import Decorations


class ConversationFeed:
    """Mixed into the chat window (which owns the widgets below)."""

    client: AriadneClient
    model: ConversationModel | None
    view: QListView
    bubbles: AttachmentDelegate
    threads: QListWidget
    progress: QLabel
    _following: bool  # the view keeps the newest message in sight
    _restoring: bool  # this device is new to its history: load all of it
    _loading_older: asyncio.Future[int] | None
    _backfill: asyncio.Future[int] | None
    _pending: set[asyncio.Future[object]]

    def _set_up_view(self) -> None:
        """The conversation's view (made by the window) gets its bubbles and follows this."""
        client = self.client
        self.bubbles = AttachmentDelegate(
            client.username,
            client.send_notes.get,
            client.conversations.failure,
            # A window can be repainted after its client closed (a style change reaches every
            # widget still alive): its profile database is gone by then.
            lambda message_id: None if client.closed else client.attachments.get(message_id),
            lambda message_ids: {} if client.closed else client.attachments.get_many(message_ids),
        )
        # The view must never outlive its delegate (it would paint through a dangling one).
        self.bubbles.setParent(self.view)
        self.bubbles.decorations = Decorations(
            lambda messages: control_actions.decorations(client, messages), HEIGHTS_KEPT
        )
        self.view.setItemDelegate(self.bubbles)
        self.view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.view.setUniformItemSizes(False)
        self.view.setSelectionMode(QListView.SelectionMode.NoSelection)
        self.view.setWordWrap(True)
        self.view.verticalScrollBar().valueChanged.connect(self._maybe_load_older)
        self.view.verticalScrollBar().valueChanged.connect(self._mark_read_soon)
        # The view follows the newest message while it is shown: bubbles are measured again as
        # the window is laid out or resized (taller when narrower), which would otherwise leave
        # the newest one cut off below the view. Scrolling up stops following.
        self._following = True
        self.view.verticalScrollBar().valueChanged.connect(self._note_following)
        self.view.verticalScrollBar().rangeChanged.connect(self._keep_following)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu_at)
        self.view.clicked.connect(self._on_bubble_clicked)
        self._loading_older = None
        self._backfill = None

    def _on_message(self, message: StoredMessage) -> None:
        if self.model is not None and message.thread == self.model.thread:
            at_bottom = self._at_bottom()
            self.model.add(message)
            self._resolve_quotes()
            if at_bottom or message.sender_user == self.client.username:
                self.view.scrollToBottom()
            self._mark_read_soon()
        self._ensure_thread(message.thread)

    def _resolve_quotes(self) -> None:
        """Messages arrived: a reply quoting one this device did not hold shows it now."""
        if self.model is not None:
            for message_id in self.bubbles.messages_arrived():
                self.model.refresh(message_id)

    def _on_delivery(self, event: DeliveryUpdated) -> None:
        if self.model is not None:
            self.model.update(event)
        self._refresh_thread(event.thread)

    def _on_controls(self, event: MessagesChanged | MessagesRemoved) -> None:
        model = self.model
        if model is None or event.thread != model.thread:
            return
        if isinstance(event, MessagesRemoved):
            model.remove(event.message_ids)
        else:
            self.bubbles.forget(event.message_ids)  # a new text: measure it again
            model.reread(event.message_ids)

    def _on_deferred(self, event: SendDeferred) -> None:
        """The bubble shows why its message waits (the delegate reads ``client.send_notes``)."""
        if self.model is not None:
            self.model.refresh(event.message_id)

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
            self._resolve_quotes()
            if self.model.rowCount() == 0:
                self.open_thread(event.thread)
            else:
                self.model.older_available()
                if self.view.verticalScrollBar().value() == 0:
                    self._maybe_load_older(0)

    def start_backfill(self) -> None:
        """Load the rest of the history in the background (after a restore), with progress."""
        if self._backfill is None or self._backfill.done():
            self._backfill = asyncio.ensure_future(self.client.backfill())
            self._pending.add(self._backfill)
            self._backfill.add_done_callback(self._report_failure)

    def _maybe_load_older(self, value: int) -> None:
        """Slide the model's window at either end, keeping the message on screen where it is.
        (Qt's own fetchMore fires only at the bottom; a chat's history grows upward.)"""
        model = self.model
        if model is None:
            return
        bar = self.view.verticalScrollBar()
        if value == 0:
            self._following = False  # at the top, reading older messages
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

    def _note_following(self, _value: int) -> None:
        newer = self.model is not None and self.model.has_newer
        self._following = self._at_bottom() and not newer

    def _keep_following(self, _low: int, _high: int) -> None:
        if self._following and self.model is not None and not self.model.has_newer:
            self.view.scrollToBottom()

    def _at_bottom(self) -> bool:
        bar = self.view.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4
