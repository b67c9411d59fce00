"""``ariadne demo --hostile``: each attack run from the "Relay operator" window against the real
relay process (its attack layer on) and real clients, and what each client's window shows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

from client.gui.chat_window import ChatWindow
from client.gui.operator_window import CAUGHT, OperatorWindow, hostile_demo
from client.hostile_attacks import ATTACKS

REPO = Path(__file__).parents[2]


def shown(window: ChatWindow) -> list[str]:
    """The open conversation's rows as the window displays them."""
    model = window.model
    assert model is not None
    return [model.data(model.index(row, 0)) for row in range(model.rowCount())]


def threads(window: ChatWindow) -> list[str]:
    return [window.threads.item(row).text() for row in range(window.threads.count())]


def test_every_attack_from_the_operator_window_is_caught_where_the_user_sees_it(qtbot, qloop):
    ready: dict[str, object] = {}
    demo = asyncio.ensure_future(
        hostile_demo(on_ready=lambda windows, operator: ready.update(w=windows, op=operator))
    )
    qtbot.waitUntil(lambda: "op" in ready or demo.done(), timeout=60_000)
    alice_window, bob_window = ready["w"]  # type: ignore[misc]
    operator: OperatorWindow = ready["op"]  # type: ignore[assignment]
    assert operator.windowTitle() == "Ariadne — Relay operator"
    assert [operator.buttons[a.key].text() for a in ATTACKS] == [a.title for a in ATTACKS]

    def attack(key: str) -> None:
        qtbot.mouseClick(operator.buttons[key], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: key in operator.outcomes, timeout=60_000)
        assert operator.outcomes[key].caught, operator.outcomes[key]
        assert operator.status.text().endswith(CAUGHT)

    attack("read")
    assert "Meet me at the north gate at noon." in shown(bob_window)
    assert "holds" in operator.record.item(0).text()

    attack("flip")
    qtbot.waitUntil(lambda: "couldn't decrypt this message" in shown(bob_window))
    assert "Please send the 100 to account 4411." not in shown(bob_window)

    attack("replay")
    qtbot.waitUntil(lambda: "Pay the invoice (once)." in shown(bob_window))
    assert shown(bob_window).count("Pay the invoice (once).") == 1

    attack("relabel")
    qtbot.waitUntil(lambda: any(t.startswith("mallory") for t in threads(bob_window)))
    assert any("Couldn't decrypt" in t for t in threads(bob_window) if t.startswith("mallory"))

    attack("ghost")
    qtbot.waitUntil(lambda: alice_window.relay_alert.isVisible())
    assert "never signed" in alice_window.relay_alert.text.text()

    attack("rollback")
    qtbot.waitUntil(
        lambda: (
            alice_window.relay_alert.text.text()
            == "bob's device list was rolled back by the relay — not accepted"
        )
    )

    attack("hide_epoch")
    assert "restore refused" in operator.record.item(6).text()

    attack("pairing")
    tablet = next(c for c in operator.cast.extra if c.device_name == "Bob's tablet")
    dialog = bob_window.approvals[tablet.device_id]  # Bob's desktop asks him to compare
    qtbot.waitUntil(lambda: dialog.code.text()[:1].isdigit())
    record = operator.record.item(7).text()
    assert f"bob's desktop: code {dialog.code.text()}" in record
    assert "they differ, so Bob rejects it" in record

    attack("withhold")
    assert alice_window.relay_alert.text.text().startswith("waiting for delivery")
    qtbot.waitUntil(lambda: "Are you coming tonight?" in shown(bob_window))

    attack("reorder")
    qtbot.waitUntil(
        lambda: (
            "the relay delivered alice's messages out of order; they are shown in the order"
            " alice sent them" in shown(bob_window)
        )
    )
    rows = shown(bob_window)
    assert rows.index("First: the plan is off.") < rows.index("Second: the plan is back on.")

    assert operator.record.count() == len(ATTACKS)
    for window in (alice_window, bob_window, operator):
        window.close()
    qtbot.waitUntil(demo.done, timeout=30_000)
    assert demo.result() == 0


def test_the_hostile_demo_opens_three_windows_and_closes_cleanly():
    result = subprocess.run(
        [sys.executable, "-m", "client.cli", "demo", "--hostile", "--lifetime", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    for title in ("alice (Alice's desktop)", "bob (Bob's desktop)", "Relay operator"):
        assert f"window: Ariadne — {title}" in result.stdout
    assert "with its attack layer on" in result.stdout
    assert "demo: closed cleanly" in result.stdout
    assert "ATTACK LAYER ON" in result.stderr and "Traceback" not in result.stderr
