"""A second ``ariadne`` on a profile that is already open says so and exits, changing nothing."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QApplication, QMessageBox

from client.gui.app import single


def test_a_second_start_on_an_open_profile_says_so_and_exits(qtbot, harness):
    alice = harness.account("alice")  # this process holds alice's profile, online
    run = asyncio.ensure_future(single(alice.profile_dir, harness.url))

    def box() -> QMessageBox | None:
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
        return next((b for b in boxes if b.isVisible()), None)

    qtbot.waitUntil(lambda: box() is not None, timeout=10_000)
    assert "already open in another Ariadne" in box().text()  # type: ignore[union-attr]
    box().accept()  # type: ignore[union-attr]
    qtbot.waitUntil(run.done, timeout=10_000)
    assert run.result() == 1
    assert alice.link.online.is_set()  # the first one was not pushed off the relay


def test_a_second_demo_on_the_same_folder_says_so_and_exits(qtbot, qloop, tmp_path, capsys):
    from client.core.profile_lock import hold
    from client.gui.app import demo

    with hold(tmp_path):  # the first demo, still running
        run = asyncio.ensure_future(demo(tmp_path))
        qtbot.waitUntil(run.done, timeout=10_000)
    assert run.result() == 1
    assert "in use by another ariadne demo" in capsys.readouterr().err
    assert not (tmp_path / "relay").exists()  # no second relay started on its data
