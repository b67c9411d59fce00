"""Panels inside the main window, instead of separate dialog windows.

A dialog in its own top-level window gets whatever size the window manager gives it (clipped
text, 220-pixel-wide boxes), lands on top of other windows (over the very code the user is asked
to compare) and stacks with the next one. A panel opens in a pane on the right of the window
that asked for it: sized to its content (wide enough for its widest line, scrolling rather than
cutting when the window is short), one at a time with the earlier ones kept underneath (closing
the top one shows the one below, so an approval that arrives while "My devices" is open does not
end either), with a title and a close button. Esc closes the top one: the window's one Esc
shortcut (see ``keyboard``) calls :meth:`PanelHost.close_top`, as a second shortcut on the same
key would make Qt treat both as ambiguous and run neither.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

PANEL_MIN_WIDTH = 340  # narrower, and the pairing code and its buttons wrap badly


class PanelHost(QFrame):
    """The right-hand pane of a window: a stack of panels, the top one shown."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("panelHost")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel("")
        self.title.setObjectName("panelTitle")
        self.title.setWordWrap(True)
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close this panel (Esc)")
        self.close_button.clicked.connect(self.close_top)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.close_button)
        self.stack = QStackedWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)
        self.panels: list[QWidget] = []
        self._frames: dict[QWidget, QScrollArea] = {}
        self._set_aside: QWidget | None = None  # a pane hidden to make room (small screens)
        self._sizes_before: list[int] | None = None  # the panes' widths before the first panel
        self.hide()

    @property
    def top(self) -> QWidget | None:
        return self.panels[-1] if self.panels else None

    def show_panel(self, panel: QWidget) -> QWidget:
        """Put ``panel`` on top (it moves up if it is already in the stack)."""
        if panel in self.panels:
            self.panels.remove(panel)
        else:
            frame = QScrollArea()
            frame.setWidgetResizable(True)
            frame.setFrameShape(QFrame.Shape.NoFrame)
            panel.setWindowFlags(Qt.WindowType.Widget)
            # Its own height at the top, the rest empty: a layout stretched to the pane's height
            # would scatter a short panel's lines over it.
            body = QWidget()
            column = QVBoxLayout(body)
            column.setContentsMargins(0, 0, 0, 0)
            column.addWidget(panel)
            column.addStretch(1)
            frame.setWidget(body)
            self._frames[panel] = frame
            self.stack.addWidget(frame)
            panel.installEventFilter(self)
        self.panels.append(panel)
        panel.show()
        self._show_top()
        return panel

    def close_top(self) -> None:
        if self.top is not None:
            self.top.close()  # a dialog's close is its reject: it cancels what it was doing

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Only a panel hidden itself (closed, accepted, rejected) leaves: not one hidden with
        # its window, or under the panel above it.
        if event.type() == QEvent.Type.Hide and watched in self._frames:
            assert isinstance(watched, QWidget)
            if watched.isHidden():
                self._forget(watched)
        elif watched is self.top and event.type() in (
            QEvent.Type.WindowTitleChange,
            QEvent.Type.LayoutRequest,  # its content grew (a status line, a code): widen
        ):
            self._show_top()
        return False

    def _forget(self, panel: QWidget) -> None:
        if panel in self.panels:
            self.panels.remove(panel)
        frame = self._frames.pop(panel)
        panel.removeEventFilter(self)
        # The panel outlives its frame: whoever opened it may still ask it things.
        panel.setParent(None)  # type: ignore[call-overload]
        self.stack.removeWidget(frame)
        frame.deleteLater()
        self._show_top()

    def _show_top(self) -> None:
        top = self.top
        if top is None:
            self.hide()
            if self._set_aside is not None:
                self._set_aside.show()
                self._set_aside = None
            splitter = self.parentWidget()
            if self._sizes_before is not None and isinstance(splitter, QSplitter):
                # The panes get their widths back (a pane shown again would keep none).
                splitter.setSizes(self._sizes_before)
            self._sizes_before = None
            return
        self.stack.setCurrentWidget(self._frames[top])
        title = top.windowTitle().removeprefix("Ariadne — ")
        self.title.setText(f"<b>{title[:1].upper() + title[1:]}</b>")
        wanted = max(PANEL_MIN_WIDTH, top.minimumSizeHint().width() + 40)  # margins, scroll bar
        self.setMinimumWidth(0)  # (the splitter is told below; a minimum could push it out)
        self.show()
        self._make_room(wanted)

    def _make_room(self, wanted: int) -> None:
        """Give the panel ``wanted`` pixels beside the panes to its left, taken from the one
        next to it (the conversation); widen the window if it is too narrow (within its
        screen). What still does not fit scrolls inside the panel, never cut off."""
        splitter = self.parentWidget()
        if not isinstance(splitter, QSplitter):
            return
        window = self.window()
        index = splitter.indexOf(self)
        if self._sizes_before is None:
            self._sizes_before = [*splitter.sizes()[:index], 0, *splitter.sizes()[index + 1 :]]
        handles = splitter.handleWidth() * (splitter.count() - 1)
        others = sum(
            splitter.widget(i).minimumSizeHint().width()
            for i in range(splitter.count())
            if i != index and not splitter.widget(i).isHidden()
        )
        total = splitter.width() - handles  # the panes' width together
        if wanted > total - others and not window.isMaximized() and not window.isFullScreen():
            screen = window.screen().availableGeometry()
            grow = min(screen.width() - window.width(), wanted - (total - others))
            if grow > 0:
                window.resize(window.width() + grow, window.height())
                window.raise_()  # grown over its neighbour: in front, so the panel shows
                total += grow
        if wanted > total - others and index >= 2 and splitter.widget(0).isVisible():
            # Still too narrow (a small screen): the conversation list steps aside while the
            # panel is open, as a sheet would cover it; it comes back when the panel closes.
            first = splitter.widget(0)
            others -= first.minimumSizeHint().width()
            first.hide()
            self._set_aside = first
        width = max(0, min(wanted, total - others))
        sizes = [
            0 if splitter.widget(i).isHidden() else size for i, size in enumerate(splitter.sizes())
        ]
        sizes[index] = width
        sizes[index - 1] = max(1, total - width - sum(sizes[: index - 1]))
        splitter.setSizes(sizes)
        # Once more after the splitter lays out what was shown or hidden (it shares freed
        # space out by its own rule then), unless the last panel closed meanwhile.
        QTimer.singleShot(0, lambda: self.top is not None and splitter.setSizes(sizes))


def host_of(widget: QWidget) -> PanelHost | None:
    """The panel host of the window ``widget`` is in, if it is in one."""
    window = widget.window()
    return window.findChild(PanelHost) if window is not None else None


def show_beside(owner: QWidget, panel: QWidget) -> QWidget:
    """Open ``panel`` in the window of ``owner`` (a panel opening the next step), or on its
    own if ``owner`` is not in a window with panels."""
    host = host_of(owner)
    if host is None:
        panel.show()
        return panel
    return host.show_panel(panel)
