"""Light and dark looks, and the app icon (from ``assets/`` when running from a checkout)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

ASSETS = Path(__file__).resolve().parents[2] / "assets"
ERROR_STYLE = "color: #c62828"  # a label that says what went wrong


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
QPushButton { border-radius: 8px; padding: 6px 14px; background: #0a7cff; color: white; }
QPushButton:disabled { background: #9bbfe8; }
"""
LIGHT = (
    _COMMON
    + """
QMainWindow, QDialog { background: #ffffff; }
QListWidget { background: #f5f6f7; }
QPlainTextEdit, QLineEdit { background: #f0f2f5; border: 1px solid #dadde1; color: #050505; }
QListView { background: #ffffff; border: none; }
"""
)
DARK = (
    _COMMON
    + """
QMainWindow, QDialog { background: #18191a; color: #e4e6eb; }
QLabel { color: #e4e6eb; }
QListWidget { background: #242526; color: #e4e6eb; }
QPlainTextEdit, QLineEdit { background: #3a3b3c; border: 1px solid #3e4042; color: #e4e6eb; }
QListView { background: #18191a; border: none; }
"""
)


def is_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_style(app: QApplication, dark: bool | None = None) -> None:
    app.setStyleSheet(DARK if (is_dark() if dark is None else dark) else LIGHT)
    icon = ASSETS / "ariadne.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
