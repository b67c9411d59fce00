"""Settings: look (light, dark or the system's), text size, desktop notifications and read
receipts. Each choice applies at once and is kept in the profile (``Preferences``)."""

from __future__ import annotations

import msgspec
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.preferences import FONT_SIZES, Preferences, Theme
from client.gui.style import apply_style

THEMES = {Theme.SYSTEM: "Same as the system", Theme.LIGHT: "Light", Theme.DARK: "Dark"}

_system_font: QFont | None = None  # the application's font before any size was chosen


def apply_preferences(preferences: Preferences) -> None:
    """Apply the look and the text size to the whole application."""
    global _system_font
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    dark = None if preferences.theme is Theme.SYSTEM else preferences.theme is Theme.DARK
    if _system_font is None:
        _system_font = QFont(app.font())
    font = QFont(_system_font)
    if preferences.font_size:
        font.setPointSize(preferences.font_size)
    # Under a style sheet, a new application font reaches only the top-level windows, not the
    # widgets inside them (the conversation's bubbles): deliver the font change first, then
    # apply the sheet, which gives every widget the font again.
    app.setFont(font)
    QApplication.sendPostedEvents()
    apply_style(app, dark)


class SettingsPanel(QWidget):
    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.client = client
        self.setWindowTitle("Settings")
        chosen = client.preferences
        self.theme = QComboBox()
        for theme, label in THEMES.items():
            self.theme.addItem(label, theme)
        self.theme.setCurrentIndex(list(THEMES).index(chosen.theme))
        self.font_size = QComboBox()
        for size in FONT_SIZES:
            self.font_size.addItem(f"{size} pt" if size else "Same as the system", size)
        self.font_size.setCurrentIndex(
            FONT_SIZES.index(chosen.font_size) if chosen.font_size in FONT_SIZES else 0
        )
        self.notifications = QCheckBox("Show a notification for new messages")
        self.notifications.setChecked(chosen.notifications)
        self.notifications.setToolTip(
            "Off: quiet. The unread count still shows in the window title."
        )
        self.read_receipts = QCheckBox("Send and show read receipts")
        self.read_receipts.setChecked(chosen.read_receipts)
        note = QLabel(
            "Without read receipts your contacts do not see when you read their messages, and "
            "you do not see when they read yours. Your other devices still learn what you read."
        )
        note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Look", self.theme)
        form.addRow("Text size", self.font_size)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.notifications)
        layout.addWidget(self.read_receipts)
        layout.addWidget(note)
        layout.addStretch(1)
        self.theme.currentIndexChanged.connect(self._save)
        self.font_size.currentIndexChanged.connect(self._save)
        self.notifications.toggled.connect(self._save)
        self.read_receipts.toggled.connect(self._save)

    def _save(self) -> None:
        chosen = msgspec.structs.replace(
            self.client.preferences,
            theme=Theme(self.theme.currentData()),
            font_size=int(self.font_size.currentData()),
            notifications=self.notifications.isChecked(),
            read_receipts=self.read_receipts.isChecked(),
        )
        self.client.set_preferences(chosen)
        apply_preferences(chosen)
