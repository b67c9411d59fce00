"""A message's delivery state as a shape, so it is told apart without reading a word or seeing
colour: an open dashed circle while it waits, one tick in a circle once the relay has it, two
circled ticks when a device of the recipient has it, and the two circles filled once read. A
message that was not sent shows a warning triangle. The word stays beside it (and in Info)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF

from client.core.events import MessageStatus

# Horizontal room a tick takes after the meta text.
TICK_WIDTH = 22


def _check(painter: QPainter, circle: QRectF, ink: QColor) -> None:
    w, h = circle.width(), circle.height()
    path = QPainterPath(QPointF(circle.left() + 0.27 * w, circle.top() + 0.52 * h))
    path.lineTo(circle.left() + 0.45 * w, circle.top() + 0.70 * h)
    path.lineTo(circle.left() + 0.75 * w, circle.top() + 0.33 * h)
    painter.setPen(QPen(ink, 1.4))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(path)


def paint_tick(
    painter: QPainter, box: QRect, status: MessageStatus, ink: QColor, fill: QColor
) -> None:
    """Paint ``status`` in ``box`` (right-aligned, vertically centred) in ``ink`` over a bubble
    of colour ``fill`` (the filled circles' checks are drawn in it)."""
    size = min(box.height(), 12)
    top = box.top() + (box.height() - size) / 2
    right = QRectF(box.right() - size, top, size, size)
    left = right.translated(-size * 0.55, 0)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if status is MessageStatus.SENDING:
        pen = QPen(ink, 1.2, Qt.PenStyle.DotLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(right.adjusted(1, 1, -1, -1))
    elif status is MessageStatus.SENT:
        painter.setPen(QPen(ink, 1.2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(right.adjusted(0.5, 0.5, -0.5, -0.5))
        _check(painter, right, ink)
    elif status in (MessageStatus.DELIVERED, MessageStatus.READ):
        read = status is MessageStatus.READ
        for circle in (left, right):
            painter.setPen(QPen(ink, 1.2))
            painter.setBrush(ink if read else fill)
            painter.drawEllipse(circle.adjusted(0.5, 0.5, -0.5, -0.5))
            _check(painter, circle, fill if read else ink)
    elif status is MessageStatus.FAILED:
        triangle = QPolygonF(
            [
                QPointF(right.center().x(), right.top()),
                QPointF(right.right(), right.bottom()),
                QPointF(right.left(), right.bottom()),
            ]
        )
        painter.setPen(QPen(ink, 1.2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPolygon(triangle)
        painter.drawLine(
            QPointF(right.center().x(), right.top() + 0.35 * size),
            QPointF(right.center().x(), right.top() + 0.7 * size),
        )
        painter.drawPoint(QPointF(right.center().x(), right.top() + 0.85 * size))
    painter.restore()
