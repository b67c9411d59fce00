"""Regenerates the hostile-relay demo's screenshots from the real app, through the real relay
process with its attack layer on: the "Relay operator" window beside the client that caught the
attack, ``screenshot-hostile-<screen>-<theme>.png``.

QT_QPA_PLATFORM=offscreen python assets/hostile_screenshots.py [light|dark]
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from screenshots import side_by_side  # noqa: E402

from assets.screenshots import each_theme  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from client.gui.operator_window import OperatorWindow, hostile_demo  # noqa: E402


async def main(theme: str) -> None:
    ready: asyncio.Future[tuple[list[ChatWindow], OperatorWindow]] = asyncio.Future()
    demo = asyncio.ensure_future(hostile_demo(on_ready=lambda w, o: ready.set_result((w, o))))
    (alice_window, bob_window), operator = await ready
    operator.resize(720, 900)
    for window in (alice_window, bob_window):
        window.resize(640, 900)
    for key in ("read", "flip", "replay", "relabel", "ghost", "rollback"):
        await operator.run(key)
    await asyncio.sleep(0.3)  # let the banner and the record repaint
    side_by_side([operator, alice_window], HERE / f"screenshot-hostile-rollback-{theme}.png")
    for key in ("hide_epoch", "pairing", "withhold", "reorder"):
        await operator.run(key)
    for dialog in bob_window.approvals.values():
        dialog.close()
    await asyncio.sleep(0.3)
    bob_window.view.scrollToBottom()
    await asyncio.sleep(0.1)
    side_by_side([operator, bob_window], HERE / f"screenshot-hostile-bob-{theme}.png")
    for window in (alice_window, bob_window, operator):
        window.close()
    await demo


if __name__ == "__main__":
    each_theme(main)
