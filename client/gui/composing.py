"""Sending what the composer holds to the open conversation, and keeping what is typed: a draft
per conversation, saved as it changes, and cleared only of what was stored to be sent. A part of
:class:`~client.gui.chat_window.ChatWindow`, kept apart to keep each concern readable; it uses
the window's widgets."""

from __future__ import annotations

import asyncio

from PySide6.QtGui import QTextCursor

from client.core.client import AriadneClient, SendError
from client.gui.composer import Composer, LengthCounter
from client.gui.control_bar import ConversationControls
from client.gui.conversation_model import ConversationModel


class Composing:
    """Mixed into the chat window (which owns the widgets below)."""

    client: AriadneClient
    model: ConversationModel | None
    composer: Composer
    counter: LengthCounter
    controls: ConversationControls
    _draft_thread: str | None  # whose draft the composer holds
    _pending: set[asyncio.Future[object]]

    def send(self, text: str) -> None:
        """Send ``text`` to the open conversation. The composer is cleared once the message is
        stored (queued); a text over the limit, or one the core refuses, stays where it is."""
        if self.model is None or not text.strip() or self.counter.over:
            return
        self.send_parts([text])

    def send_parts(self, parts: list[str]) -> None:
        if self.model is None or not parts:
            return
        thread, typed = self.model.thread, self.composer.toPlainText()
        reply_to = self.controls.take_reply()
        self.client.conversations.introduce(thread)

        async def store_all() -> None:
            for n, part in enumerate(parts):
                await self.client.send_text(thread, part, reply_to if n == 0 else None)

        def stored(future: asyncio.Future[None]) -> None:
            # What was sent leaves the composer, or the draft it became if the user moved to
            # another conversation meanwhile; anything typed since stays.
            if future.cancelled() or future.exception():
                return
            if self._draft_thread == thread:
                now = self.composer.toPlainText()
                if now.startswith(typed):
                    self.composer.setPlainText(now[len(typed) :])
                    self.composer.moveCursor(QTextCursor.MoveOperation.End)
                    self._save_draft()
            elif self.client.conversations.draft(thread) == typed:
                self.client.conversations.save_draft(thread, "")

        future = asyncio.ensure_future(store_all())
        self._pending.add(future)
        future.add_done_callback(stored)
        future.add_done_callback(self._report_failure)

    def _report_failure(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self.statusBar().showMessage(f"That did not work: {future.exception()}", 5000)

    def retry(self, message_id: bytes) -> None:
        try:
            self.client.conversations.retry(message_id)
        except SendError as exc:
            self.statusBar().showMessage(f"Not sent again: {exc}", 8000)

    def _save_draft(self) -> None:
        # A client closed under a window still open (the app quitting closes windows first, and
        # that saves) has no profile to write to any more.
        if self._draft_thread is not None and not self.client.closed:
            self.client.conversations.save_draft(self._draft_thread, self.composer.toPlainText())
