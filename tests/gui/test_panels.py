"""Dialogs open as panels inside the window that asked: sized to their content, one on top of
the other (never stacked windows), Esc closes the top one; "My devices" explains how to link a
new device, its remove question says Remove / Cancel, and a removed device's composer says why
it is disabled."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from client.gui.chat_window import ChatWindow
from client.gui.pairing_dialog import ApprovalDialog
from tests.gui.test_device_control import new_device


def _top_levels() -> set[object]:
    return {w for w in QApplication.topLevelWidgets() if w.isVisible()}


def test_an_approval_opens_inside_the_window_sized_to_its_content(qtbot, harness):
    alice = harness.account("alice")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.resize(760, 560)  # the demo's width: too narrow for a panel beside
    desktop.show()
    devices = desktop.show_own_devices()
    assert devices.window() is desktop and desktop.panels.top is devices
    laptop, waiting = new_device(qtbot, harness, "Laptop")
    windows_before = _top_levels()
    qtbot.waitUntil(lambda: laptop.device_id in desktop.approvals, timeout=10_000)
    approval = desktop.approvals[laptop.device_id]
    qtbot.waitUntil(lambda: approval.approve.isEnabled(), timeout=10_000)

    assert approval.window() is desktop  # a panel, not a window over the laptop's screen
    assert _top_levels() == windows_before  # no new window appeared
    assert desktop.panels.top is approval and approval.isVisible() and not devices.isVisible()
    qtbot.waitUntil(lambda: desktop.panels.width() >= 340, timeout=5_000)  # room was made
    assert approval.width() >= approval.minimumSizeHint().width()  # nothing cut off
    inside = desktop.centralWidget().rect()
    panel_area = desktop.panels.geometry()
    assert inside.contains(panel_area), (inside, panel_area)  # within the window, not past it
    assert not desktop.panels.geometry().intersects(
        desktop.view.geometry().translated(
            desktop.view.mapTo(desktop.panels.parentWidget(), desktop.view.rect().topLeft())
        )
    )  # beside the conversation, not over it
    assert "Approve 'Laptop'?" in desktop.panels.title.text()

    desktop.activateWindow()
    qtbot.waitUntil(desktop.isActiveWindow, timeout=5_000)
    # Esc closes the top panel (the approval)...
    qtbot.keyClick(QApplication.focusWidget() or desktop, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: desktop.panels.top is devices, timeout=5_000)
    assert devices.isVisible()  # ...and the one below comes back
    desktop.panels.close_button.click()
    qtbot.waitUntil(lambda: not desktop.panels.isVisible(), timeout=5_000)
    assert waiting.isVisible()
    assert desktop.threads.isVisible()  # the list that stepped aside for the panel is back
    # ...with its width back (a pane shown again in a splitter would keep none).
    panes = desktop.centralWidget()
    qtbot.waitUntil(lambda: panes.sizes()[0] >= desktop.threads.minimumWidth(), timeout=5_000)


def test_my_devices_explains_linking_and_asks_remove_or_cancel(qtbot, harness):
    alice = harness.account("alice")
    laptop = harness.second_device(alice, "Laptop")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.show()
    panel = desktop.show_own_devices()
    assert not panel.link_steps.isVisible()
    panel.link_button.click()
    steps = panel.link_steps.text()
    assert panel.link_steps.isVisible()
    for step in ("Log in on this device", "alice", harness.url, "same code", "recovery code"):
        assert step in steps

    seen: list[tuple[str, str]] = []

    def look_then_cancel() -> None:  # always answered: no hang
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, look_then_cancel)
            return
        seen.append(
            (
                box.button(QMessageBox.StandardButton.Ok).text(),
                box.button(QMessageBox.StandardButton.Cancel).text(),
            )
        )
        box.button(QMessageBox.StandardButton.Cancel).click()

    QTimer.singleShot(0, look_then_cancel)
    panel.ask_remove(laptop.device_id, "Laptop")
    assert seen == [("Remove", "Cancel")]
    assert laptop.device_id in alice.own_devices().device_ids


def test_a_removed_devices_composer_is_disabled_and_says_why(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    laptop = harness.second_device(alice, "Laptop")
    laptop_window = ChatWindow(laptop)
    qtbot.addWidget(laptop_window)
    laptop_window.show()
    attach = laptop_window.attachments.bar.attach_button
    assert not attach.isEnabled()  # no conversation open: nothing to attach to
    laptop_window.open_conversation("bob")
    assert laptop_window.composer.isEnabled() and attach.isEnabled()
    harness.run(alice.remove_device(laptop.device_id))
    qtbot.waitUntil(lambda: laptop_window.banner.isVisible(), timeout=15_000)
    assert not laptop_window.composer.isEnabled()
    assert "removed" in laptop_window.composer.placeholderText()
    assert not attach.isEnabled()  # attaching is writing
    picture = harness.root / "picture.txt"
    picture.write_text("a file dropped on the conversation")
    laptop_window.attachments.stage(picture)  # what a drop does
    assert not laptop_window.attachments.bar.staged.isVisible()
    assert "removed" in laptop_window.attachments.bar.problem.text()
    assert not laptop_window.onboarding.hint.isVisible()  # no "write below" on a removed device


def test_a_late_approval_alone_is_still_a_panel(qtbot, harness):
    alice = harness.account("alice")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.show()
    late = ApprovalDialog(alice, "0" * 16, "Tablet")
    desktop.panels.show_panel(late)
    assert late.window() is desktop
    late.close()
    qtbot.waitUntil(
        lambda: desktop.panels.top is None and not desktop.panels.isVisible(), timeout=5_000
    )
