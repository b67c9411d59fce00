"""The backup key vault: a software stand-in for Labyrinth's HSM-backed PIN vault.

It has its own X25519 key pair (``vault.key``, created on first start, readable by the owner
only) and its own SQLite file, and shares nothing with the relay's store. The relay hands it
opaque sealed requests from authenticated devices and passes back opaque sealed answers.

Per account it keeps the PIN verifier, the wrapped recovery secret and the count of wrong
guesses. A correct PIN releases the wrapped secret; each wrong PIN counts; at the
``GUESS_LIMIT``-th wrong PIN the secret and verifier are overwritten (``secure_delete``), the
write-ahead log is checkpointed and truncated so no older page still holds them, and the
account's vault entry is locked for good. Backing up again replaces the secret but keeps the
count, so an attacker cannot buy fresh guesses by triggering a re-backup.

Only a member device may back up (the relay says whether the caller is one: the vault cannot
know), and the backup must be signed by the account key (AMK), checked against the AMK public key
the relay holds for the account. Anyone who logged in with the password may ask for the secret
with the PIN: that is how a new device restores.

What software cannot give (see the README): an HSM keeps its private key and counters out of
reach of the operator. Here whoever controls the host can read ``vault.key`` and the verifiers
and guess PINs offline; the guess limit only binds an attacker who goes through the protocol.
"""

from __future__ import annotations

import hmac
import logging
import os
import sqlite3
from pathlib import Path

from shared.boxes import StorageKey
from shared.errors import ProtocolError
from shared.pin import (
    GUESS_LIMIT,
    VaultAnswer,
    VaultRequest,
    backup_signed_by,
    open_request,
    seal_answer,
)

log = logging.getLogger("ariadne.vault")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backups (
    username TEXT PRIMARY KEY,
    verifier BLOB,
    wrapped BLOB,
    wrong_guesses INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0
);
"""


class Vault:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / "vault.key"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(StorageKey.generate().private)
        self._key = StorageKey(key_file.read_bytes())
        self._db = sqlite3.connect(directory / "vault.sqlite3", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # a deleted secret is overwritten, not freed
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def _forget_old_pages(self) -> None:
        """Copy the newest pages into the database and empty the write-ahead log: until then the
        ``-wal`` file still holds the pages written before the overwrite, secret included."""
        busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.error("the vault's write-ahead log could not be truncated")

    @property
    def public_key(self) -> bytes:
        return self._key.public

    def close(self) -> None:
        self._db.close()

    def handle(
        self, username: str, sealed: bytes, *, member: bool, amk_public: bytes | None
    ) -> bytes | None:
        """Serve one sealed request from a device of ``username`` (as the relay authenticated
        it; ``member``: the device is on the account's signed list; ``amk_public``: the account
        key the relay holds). Returns the sealed answer, or None if the request does not open
        (nothing to answer to: the reply key is inside)."""
        try:
            request = open_request(self._key, username, sealed)
        except ProtocolError:
            log.info("unreadable vault request")
            return None
        if request.op == "backup":
            answer = self._backup(request, member, amk_public)
        else:
            answer = self._recover(request)
        log.info("vault %s: %s", request.op, answer.status)  # never the PIN, verifier or secret
        return seal_answer(request, answer)

    def _row(self, username: str) -> tuple[bytes | None, bytes | None, int, int] | None:
        row: tuple[bytes | None, bytes | None, int, int] | None = self._db.execute(
            "SELECT verifier, wrapped, wrong_guesses, locked FROM backups WHERE username = ?",
            (username,),
        ).fetchone()
        return row

    def _backup(self, request: VaultRequest, member: bool, amk_public: bytes | None) -> VaultAnswer:
        if request.wrapped is None:
            return VaultAnswer(status="bad_request")
        if not member:
            return VaultAnswer(status="not_a_member")
        if amk_public is None or not backup_signed_by(request, amk_public):
            return VaultAnswer(status="bad_signature")
        row = self._row(request.username)
        if row is not None and row[3]:
            return VaultAnswer(status="locked")
        with self._db:
            self._db.execute(
                "INSERT INTO backups (username, verifier, wrapped) VALUES (?, ?, ?)"
                " ON CONFLICT(username) DO UPDATE SET verifier = excluded.verifier,"
                " wrapped = excluded.wrapped",  # wrong_guesses is kept on purpose
                (request.username, request.verifier, request.wrapped),
            )
        wrong = row[2] if row else 0
        return VaultAnswer(status="ok", tries_left=GUESS_LIMIT - wrong)

    def _recover(self, request: VaultRequest) -> VaultAnswer:
        row = self._row(request.username)
        if row is None:
            return VaultAnswer(status="no_backup")
        verifier, wrapped, wrong, locked = row
        if locked or verifier is None:
            return VaultAnswer(status="locked")
        if hmac.compare_digest(verifier, request.verifier):
            with self._db:
                self._db.execute(
                    "UPDATE backups SET wrong_guesses = 0 WHERE username = ?", (request.username,)
                )
            return VaultAnswer(status="ok", tries_left=GUESS_LIMIT, wrapped=wrapped)
        wrong += 1
        with self._db:
            if wrong >= GUESS_LIMIT:
                self._db.execute(
                    "UPDATE backups SET verifier = NULL, wrapped = NULL, wrong_guesses = ?,"
                    " locked = 1 WHERE username = ?",
                    (wrong, request.username),
                )
            else:
                self._db.execute(
                    "UPDATE backups SET wrong_guesses = ? WHERE username = ?",
                    (wrong, request.username),
                )
        if wrong >= GUESS_LIMIT:
            self._forget_old_pages()
            log.warning("vault entry locked after %d wrong PINs", wrong)
            return VaultAnswer(status="locked")
        return VaultAnswer(status="wrong_pin", tries_left=GUESS_LIMIT - wrong)
