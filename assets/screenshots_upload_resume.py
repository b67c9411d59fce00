"""Regenerates ``screenshot-upload-resume-<theme>.png`` from the real app through a real relay:
Alice's window after the app was closed while two files were being sent and opened again. One
upload goes on from what the relay holds (its bubble: sending, with the progress; above the
composer, its progress bar and Cancel, as a fresh upload's); the other's file was edited
meanwhile, so its message failed and says why. Then ``screenshot-upload-cancelled-<theme>.png``:
the same window once Cancel was clicked (not sent, cancelled, the caption kept).

QT_QPA_PLATFORM=offscreen python assets/screenshots_upload_resume.py [light|dark]
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


from assets.screenshots import each_theme, settle  # noqa: E402
from client.core.client import AriadneClient  # noqa: E402
from client.core.link import LOCAL_RELAY  # noqa: E402
from client.core.store_attachments import FileState  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from relay.handlers import HANDLERS  # noqa: E402
from relay.server import start_relay  # noqa: E402
from shared import wire  # noqa: E402

FRAMES = 6  # the relay committed this many chunks of each file before the app closed


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
    await alice.send_text("bob", "The videos from Saturday, coming up.")
    video = root / "harbour-at-dawn.mp4"
    video.write_bytes(os.urandom(16 * wire.BLOB_FRAME))
    notes = root / "trip-notes.txt"
    notes.write_bytes(os.urandom(16 * wire.BLOB_FRAME))
    written: dict[bytes, int] = {}
    held = asyncio.Event()
    upload = HANDLERS[wire.UploadChunk]

    async def holding(session, frame):  # type: ignore[no-untyped-def]
        reply = await upload(session, frame)
        if frame.data:
            written[frame.blob_id] = written.get(frame.blob_id, 0) + 1
            if written[frame.blob_id] >= FRAMES:
                await held.wait()  # the app closes meanwhile; after it, a slow relay
        return reply

    HANDLERS[wire.UploadChunk] = holding
    sending = [asyncio.ensure_future(alice.attachments.send_file("bob", video, caption="Dawn"))]
    await settle(lambda: written and max(written.values()) >= FRAMES)
    # The relay answers one request of a connection at a time: the second file was read and
    # waits for its blob when the app closes.
    sending.append(asyncio.ensure_future(alice.attachments.send_file("bob", notes)))
    await settle(
        lambda: any(
            u.chunk_digests is not None and u.blob_id is None
            for u in alice._store.pending_uploads()
        )
    )
    await alice.close()
    held.set()
    for task in sending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    held.clear()
    notes.write_bytes(b"edited while the app was closed")
    alice = await AriadneClient.open(root / "a", backoff=LOCAL_RELAY)
    await settle(
        lambda: (
            any(
                (a := alice.attachments.get(m.message_id)) and a.state is FileState.FAILED
                for m in alice.messages("bob")
            )
            and any(
                (a := alice.attachments.get(m.message_id)) and a.progress
                for m in alice.messages("bob")
            )
        )
    )

    window = ChatWindow(alice)
    window.resize(640, 520)
    window.show()
    window.open_conversation("bob")
    await asyncio.sleep(0.3)  # let the bubbles repaint; this is a picture, not a test
    window.view.scrollToBottom()
    await asyncio.sleep(0.2)
    window.grab().save(str(HERE / f"screenshot-upload-resume-{theme}.png"))
    ((_, transfer),) = window.attachments.transfers.values()
    transfer.cancel_button.click()
    await settle(lambda: not window.attachments.transfers)
    await asyncio.sleep(0.2)
    window.grab().save(str(HERE / f"screenshot-upload-cancelled-{theme}.png"))
    window.close()
    held.set()
    HANDLERS[wire.UploadChunk] = upload
    for client in (alice, bob):
        await client.close()
    server.close()
    await server.wait_closed()
    relay.close()


if __name__ == "__main__":
    each_theme(main)
