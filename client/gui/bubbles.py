"""Paints a message as a chat bubble: own messages right, theirs left, with time and state; the day
label above the first message of a day, system lines centred, and the tooltip with the full date.
What a bubble says and where its parts go is :mod:`client.gui.bubble_measures`."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QHelpEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QStyle,
    QStyleOptionViewItem,
    QToolTip,
)

from client.core.events import MessageStatus, StoredMessage
from client.gui.bubble_measures import PAD, TICKED, BubbleMeasures
from client.gui.conversation_model import MessageRole
from client.gui.style import ChatColours, chat_colours
from client.gui.ticks import TICK_WIDTH, paint_tick
from client.gui.times import date_of, day, message_time


def separator(
    index: QModelIndex | QPersistentModelIndex,
    message: StoredMessage | None = None,
    date_of: Callable[[StoredMessage], tuple[int, int, int]] = date_of,
) -> str | None:
    """The day label drawn above a message: above the first row, and where the day changes.
    (The delegate passes the message it already read and a cached ``date_of``: this runs for
    every row on every layout pass.)"""
    message = message if message is not None else index.data(MessageRole)
    previous = index.siblingAtRow(index.row() - 1)
    if previous.isValid() and date_of(previous.data(MessageRole)) == date_of(message):
        return None
    return day(message)


class BubbleDelegate(BubbleMeasures):
    highlight: bytes | None = None  # a message just jumped to (a search result)

    def _paint_centred(
        self, painter: QPainter, option: QStyleOptionViewItem, top: int, text: str, italic: bool
    ) -> None:
        font = self._small(option.font)
        font.setItalic(italic)
        painter.setFont(font)
        painter.setPen(QColor(self._colours(option).day))
        height = self._line_height(option, text if italic else "")
        rect = QRect(option.rect.left() + PAD, top, option.rect.width() - 2 * PAD, height)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        message: StoredMessage = index.data(MessageRole)
        label = separator(index, message, self._date)
        top = option.rect.top()
        if label is not None or message.system:
            painter.save()
            if label is not None:
                self._paint_centred(painter, option, top, label, italic=False)
                top += self._line_height(option)
            if message.system:
                self._paint_centred(painter, option, top, message.body, italic=True)
            painter.restore()
        if message.system:
            return
        shifted = QStyleOptionViewItem(option)
        shifted.rect = QRect(
            option.rect.left(), top, option.rect.width(), option.rect.bottom() - top
        )
        option = shifted
        bubble, text_rect, meta_rect = self._geometry(option, message)
        own = message.sender_user == self.own
        colours = self._colours(option)
        if message.undecryptable:
            fill, ink = colours.undecryptable_fill, colours.undecryptable_ink
            meta_ink = ink
        elif own:
            fill, ink, meta_ink = colours.own_fill, colours.own_ink, colours.own_meta
        else:
            fill, ink, meta_ink = colours.their_fill, colours.their_ink, colours.their_meta
        body, meta = self._lines(message)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(fill))
        painter.drawRoundedRect(bubble, 14, 14)
        if message.message_id == self.highlight or option.state & QStyle.StateFlag.State_HasFocus:
            painter.setPen(QPen(QColor(colours.focus), 2.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(bubble.adjusted(-3, -3, 3, 3), 16, 16)
        painter.setPen(QColor(ink))
        name = self._name(message)
        if name:
            painter.setFont(self._name_font(option.font))
            name_box = QRect(text_rect.left(), bubble.top() + PAD, text_rect.width(), 1000)
            painter.drawText(name_box, Qt.AlignmentFlag.AlignLeft, name)
        font = QFont(option.font)
        font.setItalic(message.undecryptable)
        painter.setFont(font)
        painter.drawText(text_rect, Qt.TextFlag.TextWordWrap, body)
        painter.setFont(self._small(option.font))
        painter.setPen(QColor(meta_ink))
        ticked = own and message.status in TICKED
        text_box = meta_rect.adjusted(0, 0, -TICK_WIDTH if ticked else 0, 0)
        painter.drawText(text_box, Qt.AlignmentFlag.AlignRight | Qt.TextFlag.TextWordWrap, meta)
        if ticked:
            line = QFontMetrics(self._small(option.font)).height()
            tick_box = QRect(
                text_box.right() + 4, text_box.bottom() - line + 1, TICK_WIDTH - 4, line
            )
            paint_tick(painter, tick_box, message.status, QColor(meta_ink), QColor(fill))
        painter.restore()

    def helpEvent(
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        """Hovering a message shows its full date and time (and why it was not sent)."""
        if event.type() != QEvent.Type.ToolTip or not index.isValid():
            return super().helpEvent(event, view, option, index)
        QToolTip.showText(event.globalPos(), self.tooltip(index.data(MessageRole)), view)
        return True

    def tooltip(self, message: StoredMessage) -> str:
        text = message_time(message)
        if message.sender_user == self.own and message.status is MessageStatus.FAILED:
            text += f"\nNot sent: {self.failure(message.message_id) or 'the relay refused it'}"
        return text

    @staticmethod
    def _colours(option: QStyleOptionViewItem) -> ChatColours:
        return chat_colours(option.palette.color(QPalette.ColorRole.Window).lightness() < 128)
