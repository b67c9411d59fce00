"""Light and dark looks, and the app icon (from ``assets/`` when running from a checkout).

The look follows the system's colour scheme; ``ARIADNE_THEME=dark`` (or ``light``) overrides it,
for a system that does not say, and for screenshots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QWidget

ASSETS = Path(__file__).resolve().parents[2] / "assets"
THEME_VARIABLE = "ARIADNE_THEME"
# A label that says what went wrong. One red for both looks (set before the look is known): about
# 4.2:1 against the light and the dark background alike.
ERROR_STYLE = "color: #e0443a"


def code_font(scale: float, bold: bool = False) -> QFont:
    """Monospace, ``scale`` times the default size: codes and numbers people compare."""
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(bold)
    return font


_COMMON = """
QLabel#header { font-size: 15px; padding: 4px 2px; }
QListWidget { border: none; }
QPlainTextEdit, QLineEdit { border-radius: 8px; padding: 6px; }
QPushButton { border-radius: 8px; padding: 6px 14px; background: #0b5ed7; color: white; }
QPushButton:disabled { background: #9bbfe8; }
QPushButton:flat { background: transparent; border: 1px solid LINK; color: LINK; padding: 6px 8px; }
QPushButton:flat:disabled { background: transparent; border-color: MUTED; color: MUTED; }
QToolButton#bar { border: none; border-radius: 6px; padding: 2px; font-size: 16px; }
QToolButton#bar::menu-indicator { image: none; width: 0; }
"""
# A visible ring on whatever has the keyboard focus (the colour is the look's ``focus``).
FOCUS_RULES = """
QPlainTextEdit:focus, QLineEdit:focus { border: 2px solid FOCUS; }
QPushButton:focus, QToolButton:focus { border: 2px solid FOCUS; }
QListWidget:focus, QListView:focus { border: 2px solid FOCUS; }
QCheckBox:focus { outline: 2px solid FOCUS; }
"""
LIGHT = (
    (
        _COMMON
        + """
QMainWindow, QDialog { background: #ffffff; }
QListWidget { background: #f5f6f7; }
QPlainTextEdit, QLineEdit { background: #f0f2f5; border: 1px solid #dadde1; color: #050505; }
QListView { background: #ffffff; border: none; }
QToolButton#bar:hover { background: #e4e6eb; }
"""
        + FOCUS_RULES.replace("FOCUS", "#c75300")
    )
    .replace("LINK", "#0b5ed7")
    .replace("MUTED", "#9aa3ad")
)
DARK = (
    (
        _COMMON
        + """
QMainWindow, QDialog { background: #18191a; color: #e4e6eb; }
QLabel { color: #e4e6eb; }
QListWidget { background: #242526; color: #e4e6eb; }
QPlainTextEdit, QLineEdit { background: #3a3b3c; border: 1px solid #3e4042; color: #e4e6eb; }
QListView { background: #18191a; border: none; }
QPushButton:disabled { background: #27405e; color: #8b9bb0; }
QToolButton#bar { color: #e4e6eb; }
QToolButton#bar:hover { background: #3a3b3c; }
"""
        + FOCUS_RULES.replace("FOCUS", "#ffa657")
    )
    .replace("LINK", "#6ea8ff")
    .replace("MUTED", "#5d6167")
)


# The accent: buttons and one's own bubbles. White on it is 5.8:1 (WCAG AA asks 4.5:1).
ACCENT = "#0b5ed7"


@dataclass(frozen=True)
class ChatColours:
    """What the conversation paints, per look. Every text colour here meets WCAG AA (4.5:1)
    against the fill it is painted on (tests/gui/test_contrast.py computes each ratio)."""

    window: str  # the conversation's background
    own_fill: str
    own_ink: str
    own_meta: str  # time and ticks in one's own bubbles
    their_fill: str
    their_ink: str
    their_meta: str
    undecryptable_fill: str
    undecryptable_ink: str
    day: str  # day labels and system lines, on the window
    error: str  # the composer's counter past the limit, on the window
    button_fill: str
    button_ink: str
    link: str  # secondary buttons' text and outline, and links, on the window
    focus: str  # the ring around what has the keyboard (3:1 against the window, WCAG 1.4.11)


LIGHT_CHAT = ChatColours(
    window="#ffffff",
    own_fill=ACCENT,
    own_ink="#ffffff",
    own_meta="#e3edff",
    their_fill="#e9e9eb",
    their_ink="#050505",
    their_meta="#4b4f56",
    undecryptable_fill="#fde2e1",
    undecryptable_ink="#8a1c1c",
    day="#65676b",
    error="#c62828",
    button_fill=ACCENT,
    button_ink="#ffffff",
    link="#0b5ed7",
    focus="#c75300",
)
DARK_CHAT = ChatColours(
    window="#18191a",
    own_fill=ACCENT,
    own_ink="#ffffff",
    own_meta="#e3edff",
    their_fill="#3a3b3c",
    their_ink="#e4e6eb",
    their_meta="#c8cbd0",
    undecryptable_fill="#fde2e1",
    undecryptable_ink="#8a1c1c",
    day="#b0b3b8",
    error="#ff6b60",
    button_fill=ACCENT,
    button_ink="#ffffff",
    link="#6ea8ff",
    focus="#ffa657",
)


def chat_colours(dark: bool) -> ChatColours:
    return DARK_CHAT if dark else LIGHT_CHAT


# The palette behind the style sheet: what the sheet does not name (check boxes, message boxes,
# plain panels, the status bar, painted bubbles) takes its colours from here.
DARK_PALETTE = {
    QPalette.ColorRole.Window: "#18191a",
    QPalette.ColorRole.WindowText: "#e4e6eb",
    QPalette.ColorRole.Base: "#242526",
    QPalette.ColorRole.AlternateBase: "#2f3031",
    QPalette.ColorRole.Text: "#e4e6eb",
    QPalette.ColorRole.PlaceholderText: "#8a8d91",
    QPalette.ColorRole.Button: "#3a3b3c",
    QPalette.ColorRole.ButtonText: "#e4e6eb",
    QPalette.ColorRole.BrightText: "#ffffff",
    QPalette.ColorRole.Highlight: ACCENT,
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.ToolTipBase: "#3a3b3c",
    QPalette.ColorRole.ToolTipText: "#e4e6eb",
    QPalette.ColorRole.Link: "#4ea1ff",
}


def fit_height(window: QWidget) -> None:
    """Grow a window (never shrink it) to the height its text needs now: labels that wrap do not
    raise a window's minimum height, so a longer status or a new code would be squeezed or cut."""
    layout = window.layout()
    needed = max(layout.totalHeightForWidth(window.width()), layout.totalMinimumSize().height())
    if needed > window.height():
        window.resize(window.width(), needed)


def is_dark() -> bool:
    chosen = os.environ.get(THEME_VARIABLE, "").lower()
    if chosen in ("dark", "light"):
        return chosen == "dark"
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def _palette(dark: bool) -> QPalette:
    palette = QApplication.style().standardPalette()
    if dark:
        for role, colour in DARK_PALETTE.items():
            palette.setColor(role, QColor(colour))
        palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b6e72"))
        palette.setColor(
            QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#6b6e72")
        )
    return palette


def apply_style(app: QApplication, dark: bool | None = None) -> None:
    dark = is_dark() if dark is None else dark
    app.setPalette(_palette(dark))
    app.setStyleSheet(DARK if dark else LIGHT)
    icon = ASSETS / "ariadne.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
