"""What a message's bubble says and how much room it needs: its text and meta line (time, state,
why it waits or failed, a quote, "edited", reactions), its size at a view width and where its
parts go. A layout pass asks every row of the model's window for its height, so heights are kept
(per message and width, least recently used dropped first) with what they were measured for,
and fonts and their metrics are made once per font.

The base of :class:`client.gui.bubbles.BubbleDelegate`, which paints what is measured here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
)
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from client.core.events import MessageStatus, StoredMessage
from client.gui.conversation_model import PAGE, ConversationModel, MessageRole
from client.gui.decorations import Decorations
from client.gui.ticks import TICK_WIDTH
from client.gui.times import clock, date_of

PAD = 10
GAP = 4
MAX_WIDTH = 0.72
# Measured heights kept (least recently used dropped first): ten times the model's window of
# rows, so a layout pass over the window never finds its own rows dropped.
HEIGHTS_KEPT = 4_000
_WRAP = Qt.TextFlag.TextWordWrap

# The word beside each state's tick (client/gui/ticks.py draws the shape).
STATUS_TEXT = {
    MessageStatus.SENDING: "sending…",
    MessageStatus.SENT: "sent",
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.READ: "read",
    MessageStatus.FAILED: "Not sent — click to retry",
    MessageStatus.RECEIVED: "",
    MessageStatus.UNDECRYPTABLE: "",
    MessageStatus.UNSENT: "",
}
TICKED = frozenset(
    {
        MessageStatus.SENDING,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.FAILED,
    }
)
UNDECRYPTABLE_TEXT = "🔒 Couldn't decrypt this message"


def _reader(model: QAbstractItemModel) -> Callable[[int], StoredMessage]:
    """The message in a row: straight from a conversation's list, or through Qt for any other
    model."""
    if isinstance(model, ConversationModel):
        return model.message_at
    return lambda row: model.index(row, 0).data(MessageRole)  # type: ignore[no-any-return]


class Metrics(NamedTuple):
    body: QFontMetrics  # the view's font: a message's text
    meta: QFontMetrics  # the small font: the time, state, notes
    name: QFontMetrics  # the small bold font: a sender's name in a group


class BubbleSize(NamedTuple):
    """A bubble's measures: its width and height, and the heights of what it stacks."""

    width: int
    height: int
    name: int  # a sender's name (in a group), or 0
    body: int  # the text
    meta: int  # the time, state and notes
    above: int = 0  # room above the text (an attachment's thumbnail)


class BubbleMeasures(QStyledItemDelegate):
    def __init__(
        self,
        own_username: str,
        note: Callable[[bytes], str | None] = lambda _id: None,
        failure: Callable[[bytes], str | None] = lambda _id: None,
    ) -> None:
        super().__init__()
        self.own = own_username
        self.note = note  # why an own message still waits (a relay limit), if it does
        self.failure = failure  # why an own message was not sent
        # Controls: a reply's quote line, what follows the time ("edited", reactions).
        self.decorations: Decorations | None = None
        # In a group: the sender's name to show above a bubble (None: no name line).
        self.sender_name: Callable[[StoredMessage], str | None] | None = None
        # Wrapped-text measurement is the costly part of a layout pass: remember each message's
        # last measured height per view width with what it was measured for (font, a day label
        # above it, status). Every layout pass asks for every row of the window, so the cache
        # is trimmed least recently used, never emptied at once: that would make one scroll
        # step measure the whole window again.
        self._heights: OrderedDict[tuple[bytes, int], tuple[str, bool, MessageStatus, int]] = (
            OrderedDict()
        )
        self._dates: OrderedDict[bytes, tuple[int, int, int]] = OrderedDict()
        self._metrics: dict[str, Metrics] = {}
        self._label_heights: dict[tuple[str, int], int] = {}
        self._last_font: QFont | None = None
        self._last_font_key = ""

    def forget(self, message_ids: tuple[bytes, ...]) -> None:
        """These messages changed (unsent, edited, reacted to): they are decorated and measured
        again, and so are the replies quoting them."""
        changed = set(message_ids)
        if self.decorations is not None:
            changed = self.decorations.forget(changed)
        for key in [k for k in self._heights if k[0] in changed]:
            del self._heights[key]

    def primed(self, message: StoredMessage) -> bool:
        """Whether what ``message``'s bubble shows besides itself has been read."""
        return self.decorations is None or message.message_id in self.decorations

    def prime(self, messages: list[StoredMessage]) -> None:
        if self.decorations is not None:
            self.decorations.prime(messages)

    def messages_arrived(self) -> set[bytes]:
        """Messages were stored: replies quoting a message not held before are decorated and
        measured again (returns them, for the view to lay out again)."""
        if self.decorations is None:
            return set()
        waiting = self.decorations.forget_waiting()
        if waiting:
            for key in [k for k in self._heights if k[0] in waiting]:
                del self._heights[key]
        return waiting

    def _lines(self, message: StoredMessage) -> tuple[str, str]:
        body = UNDECRYPTABLE_TEXT if message.undecryptable else message.body
        if message.status is MessageStatus.UNSENT:
            body = f"{message.sender_user} unsent a message"
        meta = clock(message)
        if message.sender_user == self.own:
            waiting = message.status is MessageStatus.SENDING
            note = self.note(message.message_id) if waiting else None
            meta = f"{meta}  {note or STATUS_TEXT[message.status]}".rstrip()
            if message.status is MessageStatus.FAILED:
                why = self.failure(message.message_id)
                meta = f"⚠ {why or 'Not sent'} — click to retry  {clock(message)}"
        if self.decorations is not None:
            decoration = self.decorations.get(message)
            quote, notes = decoration.quote, decoration.notes
            body = f"{quote}\n{body}" if quote else body
            meta = f"{meta}  {notes}" if notes else meta
        return body, meta

    def _size(self, view_width: int, fonts: Metrics, message: StoredMessage) -> BubbleSize:
        """What a bubble needs, measured without placing it: a layout pass asks this for every
        new row, and it only needs the height."""
        body, meta = self._lines(message)
        width = max(120, int(view_width * MAX_WIDTH))
        body_rect = fonts.body.boundingRect(QRect(0, 0, width - 2 * PAD, 100_000), _WRAP, body)
        # The meta line wraps when it must (a failed message's reason can be long); measuring
        # it as one line first keeps the common case as cheap as before.
        room = width - 2 * PAD - TICK_WIDTH
        meta_w = fonts.meta.horizontalAdvance(meta)
        meta_h = fonts.meta.height()
        if meta_w > room:
            meta_rect = fonts.meta.boundingRect(QRect(0, 0, room, 100_000), _WRAP, meta)
            meta_w, meta_h = meta_rect.width(), meta_rect.height()
        if message.sender_user == self.own and message.status in TICKED:
            meta_w += TICK_WIDTH
        name = self._name(message)
        name_h = fonts.name.height() if name else 0
        name_w = fonts.name.horizontalAdvance(name) if name else 0
        inner_w = min(max(body_rect.width(), meta_w, name_w), width - 2 * PAD)
        body_h = body_rect.height()
        height = name_h + body_h + meta_h + 2 * PAD
        return BubbleSize(inner_w + 2 * PAD, height, name_h, body_h, meta_h)

    def _geometry(
        self, option: QStyleOptionViewItem, message: StoredMessage
    ) -> tuple[QRect, QRect, QRect]:
        """Where the bubble, its text and its meta line go in ``option.rect``."""
        area = option.rect
        size = self._size(area.width(), self._fonts(option.font), message)
        if message.sender_user == self.own:
            left = area.right() - size.width - PAD
        else:
            left = area.left() + PAD
        bubble = QRect(left, area.top() + GAP, size.width, size.height)
        inner = size.width - 2 * PAD
        text = QRect(left + PAD, bubble.top() + PAD + size.name + size.above, inner, size.body)
        meta_box = QRect(left + PAD, text.bottom() + 1, inner, size.meta)
        return bubble, text, meta_box

    def _font_key(self, font: QFont) -> str:
        """``font.key()``, which builds a string each time: every row of every layout pass
        asks, and comparing with the last font is cheaper (the view has one font)."""
        if self._last_font is None or font != self._last_font:
            self._last_font, self._last_font_key = QFont(font), font.key()
        return self._last_font_key

    def _fonts(self, font: QFont) -> Metrics:
        """The metrics of the view's font and the fonts derived from it, made once per font
        (each new QFont is resolved again, and a layout pass measures a page of bubbles)."""
        key = self._font_key(font)
        found = self._metrics.get(key)
        if found is None:
            found = Metrics(
                QFontMetrics(font),
                QFontMetrics(self._small(font)),
                QFontMetrics(self._name_font(font)),
            )
            self._metrics = {key: found}  # the font changes rarely: keep the current one
        return found

    def _name(self, message: StoredMessage) -> str | None:
        return self.sender_name(message) if self.sender_name is not None else None

    def _name_font(self, font: QFont) -> QFont:
        bold = self._small(font)
        bold.setBold(True)
        return bold

    @staticmethod
    def _small(font: QFont) -> QFont:
        small = QFont(font)
        small.setPointSizeF(max(7.0, font.pointSizeF() * 0.8))
        return small

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        # Every layout pass asks for every row of the window, so a kept height must be found
        # with little more than a dict lookup: the rows come from the model's list, not through
        # ``index.data`` (each a round trip through Qt), and a kept height is checked field by
        # field (hashing a status enum costs more than comparing it).
        model, row = index.model(), index.row()
        message_at = _reader(model)
        message = message_at(row)
        labelled = row == 0 or self._date(message_at(row - 1)) != self._date(message)
        width = option.rect.width()
        font = self._font_key(option.font)
        key = (message.message_id, width)  # Qt asks for row 0 at width 0 too, each pass
        kept = self._heights.get(key)
        if (
            kept is not None
            and kept[0] == font
            and kept[1] is labelled
            and kept[2] is message.status
        ):
            self._heights.move_to_end(key)
            return QSize(width, kept[3])
        if not self.primed(message):
            # A layout pass measures rows top to bottom: read what this one and the next
            # page show in one batch, not one query set per row.
            last = min(model.rowCount(), row + PAGE)
            self.prime([message_at(r) for r in range(row, last)])
        if kept is None and len(self._heights) >= HEIGHTS_KEPT:
            self._heights.popitem(last=False)
        height = self._line_height(option) if labelled else 0
        if message.system:
            height += self._line_height(option, message.body)
        else:
            height += self._size(width, self._fonts(option.font), message).height + 2 * GAP
        self._heights[key] = (font, labelled, message.status, height)
        self._heights.move_to_end(key)
        return QSize(width, height)

    def _date(self, message: StoredMessage) -> tuple[int, int, int]:
        date = self._dates.get(message.message_id)
        if date is None:
            if len(self._dates) >= HEIGHTS_KEPT:
                self._dates.popitem(last=False)  # the first read
            date = self._dates[message.message_id] = date_of(message)
        return date

    def _line_height(self, option: QStyleOptionViewItem, text: str = "") -> int:
        """A day label's height, or a system line's: wrapped (in italics) to the view's width."""
        if not text:  # a day label: one line, the same for every day
            key = (self._font_key(option.font), option.rect.width())
            height = self._label_heights.get(key)
            if height is None:
                if len(self._label_heights) > 64:  # widths from resizing the window
                    self._label_heights.clear()
                height = self._label_heights[key] = self._wrapped(option, "Today", italic=False)
            return height
        return self._wrapped(option, text, italic=True)

    def _wrapped(self, option: QStyleOptionViewItem, text: str, italic: bool) -> int:
        font = self._small(option.font)
        font.setItalic(italic)
        wrapped = QFontMetrics(font).boundingRect(
            QRect(0, 0, max(1, option.rect.width() - 2 * PAD), 100_000),
            Qt.TextFlag.TextWordWrap,
            text,
        )
        return wrapped.height() + 3 * GAP
