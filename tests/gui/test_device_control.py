"""Device control in real windows through a real relay: a new device is approved by comparing
codes on both screens and restores its history; then it is removed, says so, and deletes its
local data."""

from __future__ import annotations

import time

from client.core.client import AriadneClient
from client.core.pairing import PAIRING_SECONDS
from client.gui.chat_window import ChatWindow
from client.gui.recovery_dialog import RestoreDialog
from tests.conftest import PASSWORD


def new_device(
    qtbot, harness, name: str, folder: str | None = None
) -> tuple[AriadneClient, RestoreDialog]:
    """A device logged in with the password, showing its first screen (which asks the
    account's devices for approval)."""
    client = harness.run(
        AriadneClient.add_device(
            harness.root / (folder or name), harness.url, "alice", PASSWORD, name
        )
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
    assert laptop.own_fingerprint in approval.identity.text()
    assert laptop.own_fingerprint in waiting.identity.text()
    assert not laptop.is_member
    waiting.confirm.click()
    qtbot.waitUntil(lambda: "Confirmed" in waiting.pairing.text(), timeout=10_000)
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


def test_with_two_approving_devices_one_runs_the_exchange_and_the_other_says_so(qtbot, harness):
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
        approvals.append(approval)
    qtbot.waitUntil(
        lambda: (
            sum(a.approve.isEnabled() for a in approvals) == 1
            and any("Another of your devices" in a.status.text() for a in approvals)
        ),
        timeout=10_000,
    )
    running = next(a for a in approvals if a.approve.isEnabled())
    qtbot.waitUntil(lambda: waiting.pairing_code.text() == running.code.text(), timeout=10_000)
    running.approve.click()
    waiting.confirm.click()
    qtbot.waitUntil(lambda: tablet.is_member, timeout=15_000)


def test_two_requests_of_the_same_name_show_their_fingerprints_and_times(qtbot, harness):
    alice = harness.account("alice")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.show()
    laptop, waiting = new_device(qtbot, harness, "Laptop")
    other, other_waiting = new_device(qtbot, harness, "Laptop", "intruder")
    for device in (laptop, other):
        qtbot.waitUntil(lambda d=device: d.device_id in desktop.approvals, timeout=10_000)
    real, fake = desktop.approvals[laptop.device_id], desktop.approvals[other.device_id]
    for dialog in (real, fake):
        qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "Asked just now" in real.identity.text(), timeout=10_000)
    assert laptop.own_fingerprint in real.identity.text()
    assert other.own_fingerprint in fake.identity.text()
    assert laptop.own_fingerprint != other.own_fingerprint
    assert "Asked just now" in fake.identity.text()
    qtbot.waitUntil(lambda: laptop.own_fingerprint in waiting.identity.text(), timeout=10_000)
    assert "asked just now" in waiting.identity.text()
    qtbot.waitUntil(lambda: other.own_fingerprint in other_waiting.identity.text(), timeout=10_000)
    # The code on each new device belongs to its own request only.
    qtbot.waitUntil(lambda: real.approve.isEnabled() and fake.approve.isEnabled(), timeout=10_000)
    qtbot.waitUntil(
        lambda: bool(waiting.pairing_code.text() and other_waiting.pairing_code.text()),
        timeout=10_000,
    )
    assert waiting.pairing_code.text() == real.code.text()
    assert other_waiting.pairing_code.text() == fake.code.text()


def test_confirming_after_the_code_expired_is_refused_and_asks_again(qtbot, harness):
    alice = harness.account("alice")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.show()
    laptop, waiting = new_device(qtbot, harness, "Laptop")
    qtbot.waitUntil(lambda: laptop.device_id in desktop.approvals, timeout=10_000)
    qtbot.addWidget(desktop.approvals[laptop.device_id])
    qtbot.waitUntil(lambda: waiting.confirm.isVisible(), timeout=10_000)
    later = time.monotonic() + PAIRING_SECONDS + 1
    laptop.pairing.clock = lambda: later
    waiting.confirm.click()
    qtbot.waitUntil(lambda: "expired" in waiting.pairing.text(), timeout=10_000)
    assert waiting.ask_again.isVisible() and not waiting.confirm.isVisible()
    assert not laptop.is_member
