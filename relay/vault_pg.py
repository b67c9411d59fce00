"""The PIN vault with its rows in PostgreSQL, for relay nodes that share one database.

The vault's rules are :class:`relay.vault.Vault`'s; only where its rows live changes. A guess runs
in a transaction of its own that locks the account's row (``SELECT … FOR UPDATE``) before the PIN
is compared: guesses arriving on several nodes at once are counted one after the other, so they
take exactly the tries that are left and not one more. A locked entry's verifier and secret are
overwritten in the row (PostgreSQL's old row versions go at the next vacuum; the SQLite vault's
write-ahead-log truncation has no equivalent to promise here).

The vault's key stays in a file (``vault.key`` in the vault directory, as with SQLite): every
node must be given the same one, as with a TLS key. It is never written to the database.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path

import asyncpg

from relay.store_pg import PgLink
from relay.vault import Vault
from shared.boxes import StorageKey
from shared.pin import GUESS_LIMIT, VaultAnswer, VaultRequest, backup_signed_by

log = logging.getLogger("ariadne.vault")


def _load_key(directory: Path) -> StorageKey:
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / "vault.key"
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(StorageKey.generate().private)
    return StorageKey(key_file.read_bytes())


class PgVault(Vault):
    def __init__(self, directory: Path, link: PgLink) -> None:
        self._key = _load_key(directory)
        self._link = link
        self._conn: asyncpg.Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._link.call(self._conn.close())
            self._conn = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._link.connect()
        return self._conn

    def _backup(self, request: VaultRequest, member: bool, amk_public: bytes | None) -> VaultAnswer:
        if request.wrapped is None:
            return VaultAnswer(status="bad_request")
        if not member:
            return VaultAnswer(status="not_a_member")
        if amk_public is None or not backup_signed_by(request, amk_public):
            return VaultAnswer(status="bad_signature")
        return self._link.call(self._store_backup(request))

    async def _store_backup(self, request: VaultRequest) -> VaultAnswer:
        conn = await self._connection()
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT wrong_guesses, locked FROM vault_backups WHERE username = $1 FOR UPDATE",
                request.username,
            )
            if row is not None and row["locked"]:
                return VaultAnswer(status="locked")
            await conn.execute(
                "INSERT INTO vault_backups (username, verifier, wrapped) VALUES ($1, $2, $3)"
                " ON CONFLICT (username) DO UPDATE SET verifier = excluded.verifier,"
                " wrapped = excluded.wrapped",  # wrong_guesses is kept on purpose
                request.username,
                request.verifier,
                request.wrapped,
            )
        wrong = row["wrong_guesses"] if row else 0
        return VaultAnswer(status="ok", tries_left=GUESS_LIMIT - wrong)

    def _recover(self, request: VaultRequest) -> VaultAnswer:
        answer = self._link.call(self._guess(request))
        if answer.status == "locked" and answer.tries_left == 0:
            log.warning("vault entry locked after %d wrong PINs", GUESS_LIMIT)
        return answer

    async def _guess(self, request: VaultRequest) -> VaultAnswer:
        conn = await self._connection()
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT verifier, wrapped, wrong_guesses, locked FROM vault_backups"
                " WHERE username = $1 FOR UPDATE",
                request.username,
            )
            if row is None:
                return VaultAnswer(status="no_backup")
            verifier, wrapped, wrong, locked = row
            if locked or verifier is None:
                return VaultAnswer(status="locked")
            if hmac.compare_digest(verifier, request.verifier):
                await conn.execute(
                    "UPDATE vault_backups SET wrong_guesses = 0 WHERE username = $1",
                    request.username,
                )
                return VaultAnswer(status="ok", tries_left=GUESS_LIMIT, wrapped=wrapped)
            wrong += 1
            if wrong >= GUESS_LIMIT:
                await conn.execute(
                    "UPDATE vault_backups SET verifier = NULL, wrapped = NULL,"
                    " wrong_guesses = $1, locked = true WHERE username = $2",
                    wrong,
                    request.username,
                )
                return VaultAnswer(status="locked", tries_left=0)
            await conn.execute(
                "UPDATE vault_backups SET wrong_guesses = $1 WHERE username = $2",
                wrong,
                request.username,
            )
        return VaultAnswer(status="wrong_pin", tries_left=GUESS_LIMIT - wrong)
