"""Device control in real windows through a real relay: a new device is approved by comparing
codes on both screens and restores its history; then it is removed, says so, and deletes its
local data."""

from __future__ import annotations

from client.core.client import AriadneClient
from client.gui.chat_window import ChatWindow
from client.gui.recovery_dialog import RestoreDialog
from tests.conftest import PASSWORD


def new_device(qtbot, harness, name: str) -> tuple[AriadneClient, RestoreDialog]:
    """A device logged in with the password, showing its first screen (which asks the
    account's devices for approval)."""
    client = harness.run(
        AriadneClient.add_device(harness.root / name, harness.url, "alice", PASSWORD, name)
    )
    harness.clients.append(client)
    dialog = RestoreDialog(client)
    qtbot.addWidget(dialog)
    dialog.show()
    return client, dialog


def test_approve_a_new_device_with_matching_codes_then_revoke_it(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", "history from before the laptop"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 1, timeout=10_000)
    harness.run(alice.wait_saved())
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.show()

    laptop, waiting = new_device(qtbot, harness, "Laptop")

    qtbot.waitUntil(lambda: laptop.device_id in desktop.approvals, timeout=10_000)
    approval = desktop.approvals[laptop.device_id]
    qtbot.addWidget(approval)
    qtbot.waitUntil(lambda: approval.approve.isEnabled(), timeout=10_000)
    qtbot.waitUntil(lambda: waiting.pairing_code.text() != "", timeout=10_000)
    assert approval.code.text() == waiting.pairing_code.text()  # the user compares: equal
    approval.approve.click()
    qtbot.waitUntil(lambda: laptop.is_member and waiting.isHidden(), timeout=15_000)
    assert "approved" in waiting.status.text()

    laptop_window = ChatWindow(laptop)
    qtbot.addWidget(laptop_window)
    laptop_window.show()
    qtbot.waitUntil(
        lambda: (
            [m.body for m in laptop.messages("bob") if not m.system]
            == ["history from before the laptop"]
        ),
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: laptop_window.threads.count() == 1, timeout=10_000)

    panel = desktop.show_own_devices()
    qtbot.addWidget(panel)
    assert list(panel.remove_buttons) == [laptop.device_id]
    panel.ask_remove(laptop.device_id, "Laptop", confirm=False)
    qtbot.waitUntil(lambda: laptop.removed, timeout=15_000)
    qtbot.waitUntil(lambda: laptop_window.banner.isVisible(), timeout=10_000)
    assert "removed from alice's account" in laptop_window.banner.text()
    assert not laptop_window.composer.isEnabled()
    qtbot.waitUntil(lambda: panel.remove_buttons == {}, timeout=10_000)
    qtbot.waitUntil(
        lambda: any("removed a device 'Laptop'" in m.body for m in alice.messages("bob")),
        timeout=10_000,
    )
    profile = laptop.profile_dir
    harness.clients.remove(laptop)
    laptop_window.delete_local_data(confirm=False)
    qtbot.waitUntil(lambda: not profile.exists(), timeout=10_000)


def test_rejecting_tells_the_new_device(qtbot, harness):
    alice = harness.account("alice")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.show()
    laptop, waiting = new_device(qtbot, harness, "Laptop")
    qtbot.waitUntil(lambda: laptop.device_id in desktop.approvals, timeout=10_000)
    approval = desktop.approvals[laptop.device_id]
    qtbot.addWidget(approval)
    qtbot.waitUntil(lambda: approval.approve.isEnabled(), timeout=10_000)
    approval.reject_button.click()
    qtbot.waitUntil(lambda: "rejected" in waiting.pairing.text(), timeout=10_000)
    assert waiting.ask_again.isVisible()


def test_with_two_approving_devices_the_new_one_shows_each_code_by_name(qtbot, harness):
    alice = harness.account("alice", "Desktop")
    phone = harness.second_device(alice, "Phone")
    windows = []
    for client in (alice, phone):
        window = ChatWindow(client)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
    tablet, waiting = new_device(qtbot, harness, "Tablet")
    approvals = []
    for window in windows:
        qtbot.waitUntil(lambda w=window: tablet.device_id in w.approvals, timeout=10_000)
        approval = window.approvals[tablet.device_id]
        qtbot.addWidget(approval)
        qtbot.waitUntil(lambda a=approval: a.approve.isEnabled(), timeout=10_000)
        approvals.append(approval)
    qtbot.waitUntil(lambda: len(waiting.codes) == 2, timeout=10_000)
    assert waiting.codes == {"Desktop": approvals[0].code.text(), "Phone": approvals[1].code.text()}
    assert f"Phone: {approvals[1].code.text()}" in waiting.pairing_code.text()
    approvals[1].approve.click()
    qtbot.waitUntil(lambda: tablet.is_member, timeout=15_000)
