"""Closing a window quits that device: in the demo, closing Bob's window stops Bob's client
(no windowless client left online) while Alice's window and device carry on."""

from __future__ import annotations

import asyncio


def test_closing_bobs_window_stops_bobs_device_only(qtbot, qloop, tmp_path):
    from client.gui.app import demo

    ready: dict[str, object] = {}
    run = asyncio.ensure_future(demo(tmp_path, on_ready=lambda w, s: ready.update(windows=w)))
    qtbot.waitUntil(lambda: "windows" in ready or run.done(), timeout=60_000)
    alice_window, bob_window = ready["windows"]  # type: ignore[misc]
    bob, alice = bob_window.client, alice_window.client
    qtbot.waitUntil(lambda: bob.link.online.is_set() and alice.link.online.is_set(), timeout=20_000)

    bob_window.close()
    qtbot.waitUntil(lambda: bob.closed and not bob.link.online.is_set(), timeout=10_000)
    assert not run.done() and alice_window.isVisible() and not alice.closed

    alice_window.close()
    qtbot.waitUntil(run.done, timeout=30_000)
    assert run.result() == 0 and alice.closed
