"""Every text colour the conversation paints meets WCAG AA (4.5:1) against what it is painted
on, in the light and the dark look; the ticks tell states apart by shape."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPainter

from client.core.events import MessageStatus
from client.gui.style import DARK_CHAT, LIGHT_CHAT, ChatColours
from client.gui.ticks import paint_tick

AA = 4.5


def luminance(colour: str) -> float:
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    low, high = sorted([luminance(a), luminance(b)])
    return (high + 0.05) / (low + 0.05)


def pairs(c: ChatColours) -> dict[str, tuple[str, str]]:
    return {
        "own text": (c.own_ink, c.own_fill),
        "own time and ticks": (c.own_meta, c.own_fill),
        "their text": (c.their_ink, c.their_fill),
        "their time": (c.their_meta, c.their_fill),
        "undecryptable": (c.undecryptable_ink, c.undecryptable_fill),
        "day labels": (c.day, c.window),
        "counter past the limit": (c.error, c.window),
        "buttons": (c.button_ink, c.button_fill),
        "secondary buttons and links": (c.link, c.window),
    }


def test_the_drawn_icons_stand_out_in_both_looks():
    from client.gui.sidebar import SEARCH_ICON_GREY

    for look in (LIGHT_CHAT, DARK_CHAT):  # graphics need 3:1 (WCAG 1.4.11)
        assert contrast(SEARCH_ICON_GREY, look.window) >= 3.0


def test_the_measure_itself():
    assert contrast("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast("#ffffff", "#0a7cff") == pytest.approx(3.93, abs=0.01)  # the old blue


@pytest.mark.parametrize("look", [LIGHT_CHAT, DARK_CHAT], ids=["light", "dark"])
def test_every_text_meets_aa(look):
    ratios = {name: round(contrast(*pair), 2) for name, pair in pairs(look).items()}
    assert all(r >= AA for r in ratios.values()), ratios


def test_the_style_sheet_uses_the_checked_accent():
    from client.gui import style

    assert "#0a7cff" not in style.LIGHT + style.DARK
    assert f"background: {style.ACCENT}; color: white" in style.LIGHT
    for sheet, look in ((style.LIGHT, LIGHT_CHAT), (style.DARK, DARK_CHAT)):  # the checked link
        assert (
            f"QPushButton:flat {{ background: transparent; border: 1px solid {look.link}" in sheet
        )


def tick_image(status: MessageStatus) -> bytes:
    image = QImage(24, 14, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    paint_tick(painter, QRect(0, 0, 24, 14), status, QColor("black"), QColor("white"))
    painter.end()
    return bytes(image.constBits())


def test_each_state_has_its_own_shape(qapp):
    states = [
        MessageStatus.SENDING,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.FAILED,
    ]
    shapes = {tick_image(s) for s in states}
    assert len(shapes) == len(states)
    blank = QImage(24, 14, QImage.Format.Format_ARGB32)
    blank.fill(QColor("white"))
    assert bytes(blank.constBits()) not in shapes


@pytest.mark.parametrize("look", [LIGHT_CHAT, DARK_CHAT], ids=["light", "dark"])
def test_the_focus_ring_stands_out(look):
    from client.gui import style

    assert contrast(look.focus, look.window) >= 3.0  # WCAG 1.4.11, non-text contrast
    sheet = style.DARK if look is DARK_CHAT else style.LIGHT
    assert f"QPlainTextEdit:focus, QLineEdit:focus {{ border: 2px solid {look.focus}; }}" in sheet
