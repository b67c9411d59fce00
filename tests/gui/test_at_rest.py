"""What a user sees about the profile at rest: where the database key is kept, and a profile
whose key is gone."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QApplication, QMessageBox

from client.core.at_rest import KEY_RECORD
from client.gui.app import single
from client.gui.chat_window import ChatWindow


def test_the_window_says_the_key_is_kept_beside_the_data_without_an_os_keyring(qtbot, harness):
    alice = harness.account("alice")
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.show()
    assert window.at_rest.isVisible()
    assert window.at_rest.text() == "⚠ Encryption key stored beside the data"
    assert "only by that folder's permissions" in window.at_rest.toolTip()


def test_a_profile_whose_key_is_gone_is_explained_not_opened(qtbot, harness):
    alice = harness.account("alice")
    folder = alice.profile_dir
    harness.clients.remove(alice)
    harness.run(alice.close())
    (folder / KEY_RECORD).unlink()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    run = asyncio.ensure_future(single(folder, harness.url))

    def box() -> QMessageBox | None:
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
        return next((b for b in boxes if b.isVisible()), None)

    qtbot.waitUntil(lambda: box() is not None, timeout=10_000)
    assert "key record (ariadne.key) is missing" in box().text()  # type: ignore[union-attr]
    box().accept()  # type: ignore[union-attr]
    qtbot.waitUntil(run.done, timeout=10_000)
    assert run.result() == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
