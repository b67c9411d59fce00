"""Releasing the attachments of messages that are gone (PROTOCOL.md §11 "Releasing a blob").

When a message with an attachment is unsent, deleted for me, in a deleted conversation or
expired, the profile's database queues its attachment (``client/core/store_releases.py``). This
device then deletes what it holds of the file — the decrypted copy in the profile and the
ciphertext of an unfinished download, never a file of the user's own outside the profile — and
tells the relay that this account no longer needs the blob (``ReleaseBlob``). The relay holds one
reference per account and deletes the blob with the last one.

Every device of an account that removes the message releases it: the first drops the account's
reference, a later one (or a retry after a lost answer) is told ``NO_BLOB`` and counts that as
done, so the account's reference goes exactly once whichever of its devices is online. Files go
at once, online or not; the relay is told when it can be reached.
"""

from __future__ import annotations

import logging
from pathlib import Path

from client.core.context import ClientContext
from client.core.port import RelayError
from client.core.store_releases import Release
from shared import wire
from shared.attachment import decode_pointer
from shared.errors import ProtocolError
from shared.wire import ErrorCode

log = logging.getLogger("ariadne.client.attachments")

RELEASE_BATCH = 50


def local_files(folder: Path, release: Release) -> list[Path]:
    """What this device may hold of the attachment: the decrypted file (only inside the
    profile's folder: a sender's path is the user's own file), its partial decryption and the
    downloaded ciphertext."""
    files = [folder / f"{release.message_id.hex()}.blob"]
    if release.path and Path(release.path).parent == folder:
        final = Path(release.path)
        files += [final, final.with_name(final.name + ".partial")]
    return files


class BlobReleases:
    def __init__(self, ctx: ClientContext, folder: Path) -> None:
        self._ctx = ctx
        self.folder = folder

    def forget_files(self) -> None:
        """Delete the local files of every queued attachment (no relay needed)."""
        for release in self._ctx.store.releases(-1):
            for file in local_files(self.folder, release):
                file.unlink(missing_ok=True)

    async def release_due(self) -> None:
        """Tell the relay about each queued attachment; raises ``Offline`` (the rest wait)."""
        store = self._ctx.store
        while batch := store.releases(RELEASE_BATCH):
            for release in batch:
                await self._release(release)
                with store.transaction():
                    store.released(release.message_id)

    async def _release(self, release: Release) -> None:
        if not release.pointer:
            return  # the upload never finished: its sender let the relay forget it then
        try:
            pointer = decode_pointer(release.pointer)
        except ProtocolError:
            return  # a pointer this device refused: it names no blob this account holds
        try:
            await self._ctx.port.request(
                lambda rid: wire.ReleaseBlob(
                    rid=rid, blob_id=pointer.blob_id, capability=pointer.capability
                ),
                expect=wire.Ok,
            )
        except RelayError as exc:
            # NO_BLOB: another device of this account released it first, or the blob is gone.
            if exc.code is not ErrorCode.NO_BLOB:
                raise
