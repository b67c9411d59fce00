"""The profile's attachments: for each message that carries one, its pointer (as the sender
encoded it, end-to-end encrypted on the way) and where this device stands with the file.

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection and
its transactions. The pointer holds the attachment's key, so it lives only in the encrypted
profile database, like the messages themselves.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import sqlcipher3


class FileState(enum.Enum):
    """Where this device stands with an attachment's file."""

    UPLOADING = "uploading"  # this device is sending it
    CANCELLED = "cancelled"  # the user stopped the upload: the message never left
    REMOTE = "remote"  # on the relay; not downloaded here (the thumbnail shows meanwhile)
    DOWNLOADING = "downloading"
    READY = "ready"  # verified, decrypted, at ``path``
    TAMPERED = "tampered"  # the blob did not verify: deleted, never opened
    INVALID = "invalid"  # the pointer itself is refused (a size beyond the limit, …)
    GONE = "gone"  # the relay no longer has it, or never let this account fetch it
    FAILED = "failed"  # the upload could not finish


class AttachmentRow(NamedTuple):
    message_id: bytes
    pointer: bytes  # shared.attachment.encode_pointer; empty while uploading
    state: FileState
    path: str | None
    detail: str  # why, for INVALID, GONE, FAILED


class AttachmentStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def put_attachment(self, row: AttachmentRow) -> None:
        """Record an attachment; one already known keeps its state (a redelivery, a restore of a
        message this device already has)."""
        self._db.execute(
            "INSERT INTO attachments VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE"
            " SET pointer = excluded.pointer WHERE attachments.pointer = x''",
            (row.message_id, row.pointer, row.state.value, row.path, row.detail),
        )

    def attachment(self, message_id: bytes) -> AttachmentRow | None:
        row = self._db.execute(
            "SELECT message_id, pointer, state, path, detail FROM attachments WHERE message_id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        return AttachmentRow(row[0], row[1], FileState(row[2]), row[3], row[4])

    def attachments_of(self, message_ids: list[bytes]) -> dict[bytes, AttachmentRow]:
        """The attachments of those of ``message_ids`` that have one, in one query per 500 (a
        page of bubbles measured at once)."""
        found: dict[bytes, AttachmentRow] = {}
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self._db.execute(
                "SELECT message_id, pointer, state, path, detail FROM attachments"
                f" WHERE message_id IN ({marks})",
                chunk,
            ):
                found[row[0]] = AttachmentRow(row[0], row[1], FileState(row[2]), row[3], row[4])
        return found

    def set_attachment(
        self,
        message_id: bytes,
        state: FileState,
        path: str | None = None,
        detail: str = "",
        pointer: bytes | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE attachments SET state = ?, path = ?, detail = ?,"
            " pointer = coalesce(?, pointer) WHERE message_id = ?",
            (state.value, path, detail, pointer, message_id),
        )
