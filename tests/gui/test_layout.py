"""The window's frame: the left column is this device (avatar, name, ⚙ and a ⋮ menu) above the
conversations, with a magnifier beside the chat finder that searches every message; the header
is one row (who, the timer, what the relay sees, ⋮) with nothing destructive one click away;
while searching, the results stand in the list's place."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QPushButton

from client.gui.chat_window import ChatWindow
from client.gui.contact_panel import ContactPanel, OwnDevicesPanel
from client.gui.group_panel import NewGroupDialog
from client.gui.search_panel import HTML_ROLE
from client.gui.settings_panel import SettingsPanel


def _menu_texts(button) -> list[str]:  # type: ignore[no-untyped-def]
    return [action.text() for action in button.menu().actions()]


def test_the_own_bar_holds_settings_and_the_rare_actions(qtbot, harness):
    alice = harness.account("alice")
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.show()
    bar = window.own_bar
    assert bar.name is window.own_name and bar.isVisible()
    assert _menu_texts(bar.menu) == ["New group…", "My devices", "Set up a recovery code…"]
    bar.settings.click()
    assert isinstance(window.panels.top, SettingsPanel) and window.panels.top.window() is window
    bar.devices_action.trigger()
    assert isinstance(window.panels.top, OwnDevicesPanel)
    bar.new_group_action.trigger()
    assert isinstance(window.panels.top, NewGroupDialog)
    # The everyday column has no buttons left in it: only the bar, the finder and the list.
    left = window.threads.parentWidget()
    assert not [b for b in left.findChildren(QPushButton) if b.isVisible()]
    # The avatar follows the name this user chose.
    before = bar.picture.pixmap().toImage()
    window.own_name.setText("Zed Zimmer")
    qtbot.keyClick(window.own_name, Qt.Key.Key_Return)
    assert bar.picture.pixmap().toImage() != before


def test_the_header_is_one_row_and_delete_is_behind_the_menu(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    harness.run(alice.send_text("bob", "hello"))
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.resize(760, 560)  # the demo's size: everything in the header fits
    window.show()
    window.open_conversation("bob")
    row = [window.identity, window.controls.timer, window.server_button, window.chat_menu]
    assert all(w.isVisible() for w in row)
    assert len({w.geometry().center().y() // 20 for w in row}) == 1  # one row
    assert window.chat_menu.geometry().right() <= window.chat_menu.parentWidget().width()
    assert _menu_texts(window.chat_menu) == ["Safety number…", "Delete conversation…"]
    assert not [
        b for b in window.findChildren(QPushButton) if "Delete" in b.text() and b.isVisible()
    ]
    window.contact_action.trigger()
    assert isinstance(window.panels.top, ContactPanel)


def test_search_results_take_the_lists_place_until_closed(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    harness.run(alice.send_text("bob", "the [harbour] at <i>noon</i>"))
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    assert window.threads.isVisible()
    window.search_button.click()
    assert window.search.isVisible() and not window.threads.isVisible()
    assert window.search.field.hasFocus()
    window.search.field.setText("harbour")
    window.search.search()
    assert window.search.results.count() == 1
    # The matching word in bold; the message's own brackets and tags are text, not marks.
    drawn = window.search.results.item(0).data(HTML_ROLE)
    assert drawn.startswith("the [<b>harbour</b>] at &lt;i&gt;noon&lt;/i&gt;<br>"), drawn
    # The results have the column's height, not a sliver beside the list.
    assert window.search.results.height() >= window.own_bar.height() * 4
    window.search.close_button.click()
    assert not window.search.isVisible() and window.threads.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)  # again, then Esc
    assert window.search.isVisible() and not window.threads.isVisible()
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Escape)
    assert not window.search.isVisible() and window.threads.isVisible()
