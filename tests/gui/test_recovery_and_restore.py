"""Recovery in real windows: the recovery code shown once (with a PIN), a new device restoring
with a mistyped code after a wrong PIN, its conversations appearing page by page with progress,
and scrolling up past what it holds fetching the next page from the mailbox."""

from __future__ import annotations

from client.gui.chat_window import ChatWindow
from client.gui.recovery_dialog import RecoveryCodeDialog, RestoreDialog
from shared.recovery_code import is_valid, normalize
from tests.conftest import PASSWORD, profile_contents, seed_history


def make_code(qtbot, client, pin: str) -> str:
    dialog = RecoveryCodeDialog(client)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.pin.setText(pin)
    dialog.pin_again.setText(pin)
    dialog.make.click()
    qtbot.waitUntil(lambda: dialog.code != "", timeout=15_000)
    shown = normalize(dialog.code_label.text())
    assert shown == dialog.code and is_valid(shown)
    assert dialog.done_button.isVisible() and not dialog.make.isVisible()
    return dialog.code


def test_recovery_code_dialog_checks_the_pin_and_saves_the_code(qtbot, harness, tmp_path):
    alice = harness.account("alice")
    dialog = RecoveryCodeDialog(alice)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.pin.setText("1234")
    dialog.pin_again.setText("1243")
    dialog.make.click()
    assert dialog.note.text() == "The two PINs differ." and dialog.code == ""
    dialog.pin_again.setText("1234")
    dialog.make.click()
    qtbot.waitUntil(lambda: dialog.code != "", timeout=15_000)
    saved = dialog.save_to(tmp_path / "code.txt")
    assert dialog.code.replace(" ", "") in saved.read_text().replace(" ", "")
    assert saved.stat().st_mode & 0o777 == 0o600
    readable = tmp_path / "readable.txt"  # saved over a file others may read
    readable.write_text("old notes")
    readable.chmod(0o644)
    dialog.save_to(readable)
    assert readable.stat().st_mode & 0o777 == 0o600 and "old notes" not in readable.read_text()
    # Stored nowhere on the device: not in the database as it decrypts, nor in any raw file.
    alice._store.commit()
    stored = profile_contents(alice._store)
    assert dialog.code.encode() not in stored and alice.username.encode() in stored
    raw = b"".join(p.read_bytes() for p in alice.profile_dir.iterdir())
    assert dialog.code.encode() not in raw


def test_new_device_restores_with_code_after_a_wrong_pin_and_scrolls_into_the_mailbox(
    qtbot, harness
):
    alice = harness.account("alice")
    bob = harness.account("bob")
    code = make_code(qtbot, alice, "1357")
    harness.run(alice.send_text("bob", "hello bob"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    qtbot.waitUntil(lambda: alice.messages("bob")[-1].server_ts is not None, timeout=10_000)
    seed_history(alice, "bob", bob.device_id, 450, alice.messages("bob")[-1].server_ts)
    harness.run(alice.wait_saved(), timeout=60)

    laptop = harness.run(
        type(alice).add_device(
            harness.root / "alice-laptop", harness.url, "alice", PASSWORD, "Laptop"
        )
    )
    harness.clients.append(laptop)
    dialog = RestoreDialog(laptop)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.pin.setText("0000")
    dialog.with_pin.click()
    qtbot.waitUntil(lambda: "Wrong PIN — 9 tries left" in dialog.status.text(), timeout=15_000)
    typo = code[:12] + ("M" if code[12] != "M" else "N") + code[13:]
    dialog.code.setText(typo.lower())
    dialog.with_code.click()
    qtbot.waitUntil(lambda: laptop.is_member and not dialog.isVisible(), timeout=20_000)
    assert not dialog.progress.isHidden() and "Restoring history" in dialog.progress.format()

    window = ChatWindow(laptop)
    qtbot.addWidget(window)
    window.show()
    assert window.threads.count() == 1 and window.model is not None
    assert window.model.rowCount() == 100  # one page, the newest
    last = window.model.message_at(99)
    assert last.body == "old 449"
    window.view.scrollToTop()
    window._maybe_load_older(0)  # the user reached the top of what this device holds
    qtbot.waitUntil(lambda: window.model.rowCount() == 200, timeout=10_000)
    assert "Restoring history… 200 of 451" in window.progress.text()
    window.start_backfill()
    qtbot.waitUntil(lambda: "History restored: 451" in window.progress.text(), timeout=20_000)
    assert [m.message_id for m in laptop.messages("bob")] == [
        m.message_id for m in alice.messages("bob") if not m.system
    ]
