"""The top of the left column: who this device is (an avatar and the name contacts see), Settings,
and a menu for what is done rarely (a new group, this account's devices, the recovery code). The
column below belongs to the conversations; everyday work needs no button there.

Also the small glyph buttons (⋮, ⚙, a magnifier) the header shares with it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QToolButton, QWidget

from client.core.client import AriadneClient
from client.gui.avatars import avatar
from client.gui.chat_header import OwnNameField

OWN_AVATAR = 32
SEARCH_ICON_GREY = "#808489"
TOOL_WIDTH = 28


def tool_button(text: str, tip: str, name: str) -> QToolButton:
    """A borderless glyph button (styled as ``QToolButton#bar``), with a name screen readers say
    instead of the glyph."""
    button = QToolButton(text=text, toolTip=tip)
    button.setObjectName("bar")
    button.setAccessibleName(name)
    button.setFixedWidth(TOOL_WIDTH)  # a glyph's width (a menu's arrow would add room for itself)
    return button


def search_icon(size: int = 18) -> QIcon:
    """A magnifier, drawn (fonts differ in whether they have one), in a grey at 3:1 or more
    against both looks' windows (WCAG 1.4.11 for graphics)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor(SEARCH_ICON_GREY), 2))
    lens = size * 0.62
    painter.drawEllipse(QRectF(1.5, 1.5, lens, lens))
    painter.drawLine(QPointF(lens * 0.92, lens * 0.92), QPointF(size - 2.0, size - 2.0))
    painter.end()
    return QIcon(pixmap)


def menu_button(tip: str, name: str, actions: list[QAction]) -> QToolButton:
    """⋮: a menu that opens on the first click (and on Space or Enter with the focus on it)."""
    button = tool_button("⋮", tip, name)
    menu = QMenu(button)
    for action in actions:
        menu.addAction(action)
    button.setMenu(menu)
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    return button


class OwnBar(QWidget):
    def __init__(
        self,
        client: AriadneClient,
        *,
        settings: Callable[[], object],
        new_group: Callable[[], object],
        devices: Callable[[], object],
        recovery: Callable[[], object],
    ) -> None:
        super().__init__()
        self.client = client
        self.picture = QLabel()
        self.picture.setFixedSize(OWN_AVATAR, OWN_AVATAR)
        self.name = OwnNameField(client)
        self.name.editingFinished.connect(self.refresh)
        self.settings = tool_button("⚙", "Settings", "Settings")
        self.settings.clicked.connect(settings)
        self.new_group_action = QAction("New group…", self)
        self.new_group_action.triggered.connect(new_group)
        self.devices_action = QAction("My devices", self)
        self.devices_action.triggered.connect(devices)
        self.recovery_action = QAction("New recovery code…", self)
        self.recovery_action.triggered.connect(recovery)
        self.menu = menu_button(
            "New group, my devices, recovery code",
            "More",
            [self.new_group_action, self.devices_action, self.recovery_action],
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture)
        layout.addWidget(self.name, 1)
        layout.addWidget(self.settings)
        layout.addWidget(self.menu)
        self.refresh()

    def refresh(self) -> None:
        """The avatar follows the name this user chose (their username's colour either way)."""
        username = self.client.username
        self.picture.setPixmap(
            avatar(self.client.conversations.own_name or username, OWN_AVATAR, username)
        )
        self.picture.setToolTip(f"You: {username} on {self.client.device_name}")
