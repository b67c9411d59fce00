"""Avatars made from a name: its initials on a colour that stays the same for that name on every
device and every run (a CRC of the name picks it; Python's ``hash`` changes per process). For
users now, and for groups later (any name works). White initials meet WCAG AA on every colour.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap

# Each with white at 4.5:1 or more (tests/gui/test_identity.py checks it).
AVATAR_COLOURS = (
    "#b3261e",
    "#8e24aa",
    "#5e35b1",
    "#1565c0",
    "#00695c",
    "#2e7d32",
    "#8d4e12",
    "#6d4c41",
    "#ad1457",
    "#455a64",
)


def initials(name: str) -> str:
    """Up to two letters: the first of the first two words (split at spaces, dots, dashes and
    underscores), else the first two characters. "?" for an empty name."""
    words = [w for w in name.replace(".", " ").replace("_", " ").replace("-", " ").split() if w]
    if len(words) >= 2:
        return (words[0][0] + words[1][0]).upper()
    if words:
        return words[0][:2].upper() if len(words[0]) > 1 else words[0].upper()
    return "?"


def colour_of(name: str) -> str:
    return AVATAR_COLOURS[zlib.crc32(name.strip().lower().encode()) % len(AVATAR_COLOURS)]


@lru_cache(maxsize=512)
def avatar(name: str, size: int = 32, key: str | None = None) -> QPixmap:
    """A round avatar of ``size`` pixels: ``name``'s initials on ``key``'s colour (the
    username, so renaming a contact keeps their colour; ``name`` if none). Cached: lists
    repaint often."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour_of(key if key is not None else name)))
    painter.drawEllipse(QRectF(0, 0, size, size))
    font = QFont()
    font.setPixelSize(max(8, int(size * 0.4)))
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#ffffff"))
    painter.drawText(QRectF(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, initials(name))
    painter.end()
    return pixmap


def avatar_icon(name: str, size: int = 32, key: str | None = None) -> QIcon:
    return QIcon(avatar(name, size, key))
