"""Regenerates ``screenshot-attachments-<theme>.png`` from the real app through a real relay:
Alice's window with a photo staged (its preview) and a file being sent; Bob's window with the
photo's thumbnail, a downloaded file, and one whose blob the relay altered ("couldn't verify").

QT_QPA_PLATFORM=offscreen python assets/screenshots_attachments.py [light|dark]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter  # noqa: E402

from assets.screenshots import each_theme, settle, side_by_side  # noqa: E402
from client.core.attachments import AttachmentFailed  # noqa: E402
from client.core.client import AriadneClient  # noqa: E402
from client.core.link import LOCAL_RELAY  # noqa: E402
from client.core.store_attachments import FileState  # noqa: E402
from client.gui.attachment_bubbles import make_thumbnail  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from relay.server import start_relay  # noqa: E402
from shared.attachment import decode_pointer  # noqa: E402


def landscape(path: Path) -> Path:
    image = QImage(1600, 1000, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    sky = QLinearGradient(0, 0, 0, 1000)
    sky.setColorAt(0, QColor("#ff9a5a"))
    sky.setColorAt(0.55, QColor("#ffd39b"))
    sky.setColorAt(0.56, QColor("#2f6f8f"))
    sky.setColorAt(1, QColor("#173b4f"))
    painter.fillRect(image.rect(), sky)
    painter.setBrush(QColor("#fff3c4"))
    painter.drawEllipse(1100, 380, 180, 180)
    painter.end()
    image.save(str(path), "JPEG", 90)
    return path


async def main(theme: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="ariadne-shots-"))
    relay, server = await start_relay("127.0.0.1", 0, root / "relay")
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    alice = await AriadneClient.create_account(
        root / "a", url, "alice", "password1", "Alice's desktop", backoff=LOCAL_RELAY
    )
    bob = await AriadneClient.create_account(
        root / "b", url, "bob", "password1", "Bob's desktop", backoff=LOCAL_RELAY
    )
    photo = landscape(root / "harbour.jpg")
    plan = root / "route-plan.pdf"
    plan.write_bytes(b"%PDF-1.4 " + os.urandom(2_400_000))
    altered = root / "tickets.pdf"
    altered.write_bytes(b"%PDF-1.4 " + os.urandom(180_000))
    await alice.send_text("bob", "Photos from Saturday, and the plan for next time.")
    sent = [
        await alice.attachments.send_file(
            "bob",
            photo,
            caption="The harbour at dawn",
            content_type="image/jpeg",
            thumbnail=make_thumbnail(photo),
        ),
        await alice.attachments.send_file("bob", plan, content_type="application/pdf"),
        await alice.attachments.send_file("bob", altered, content_type="application/pdf"),
    ]
    await settle(lambda: all(bob.attachments.get(m.message_id) for m in sent))
    await bob.attachments.download(sent[1].message_id)
    pointer = decode_pointer(bob._store.attachment(sent[2].message_id).pointer)
    blob = relay.store.blob_dir / pointer.blob_id.hex()
    data = bytearray(blob.read_bytes())
    data[5000] ^= 1  # the relay alters the blob
    blob.write_bytes(bytes(data))
    with contextlib.suppress(AttachmentFailed):  # the bubble shows the refusal
        await bob.attachments.download(sent[2].message_id)
    assert bob.attachments.get(sent[2].message_id).state is FileState.TAMPERED

    windows = [ChatWindow(alice), ChatWindow(bob)]
    for window, peer in zip(windows, ["bob", "alice"], strict=True):
        window.resize(640, 640)
        window.show()
        window.open_conversation(peer)
    windows[0].attachments.stage(landscape(root / "sunset.jpg"))
    windows[0].composer.setPlainText("And one more")
    windows[1].attachments.bar.show_problem("Couldn't verify this file")
    await asyncio.sleep(0.3)  # let the bubbles repaint; this is a picture, not a test
    for window in windows:
        window.view.scrollToBottom()
    await asyncio.sleep(0.2)
    side_by_side(windows, HERE / f"screenshot-attachments-{theme}.png")
    for window in windows:
        window.close()
    for client in (alice, bob):
        await client.close()
    server.close()
    await server.wait_closed()
    relay.close()


if __name__ == "__main__":
    each_theme(main)
