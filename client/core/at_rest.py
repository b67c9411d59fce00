"""A profile at rest: who may read its folder, and the key that encrypts its database.

The profile database holds every private key of the device and the text of every message, so:

- **Permissions.** The profile folder is 0700 and every file in it 0600. The database file is
  created 0600 before SQLite opens it, because SQLite gives its ``-wal``, ``-shm`` and
  ``-journal`` files the mode of the database file. Opening a profile also tightens an older
  profile's folder and files.
- **Encryption.** The database is a SQLCipher database (as in Signal Desktop): every page is
  encrypted with AES-256 and authenticated with HMAC-SHA512 under a random 256-bit key, given to
  SQLCipher as a raw key (no passphrase, so no key derivation on open). ``PRAGMA key`` is the
  first statement on every connection.
- **The key.** It lives in the OS keyring (service ``ariadne``, one entry per profile) when there
  is one that the ``keyring`` package recommends (priority of one or more). Otherwise (a headless
  Linux has none; ``keyrings.alt``'s plaintext file is not recommended either) it is kept in the
  key record beside the database, and the profile is then protected only by the file
  permissions: this is logged and shown in the window. The key record ``ariadne.key`` always says
  where the key is, so a key that has gone missing is told apart from a new profile.
- **Older profiles.** A plain SQLite profile is encrypted in place on open (``sqlcipher_export``
  to a new file that then replaces it); the old file's blocks are overwritten with zeros once the
  encrypted copy is in place.

A profile that cannot be opened (its key is gone, wrong, or its record damaged) raises
:class:`ProfileLocked` with a sentence for the user, and nothing on disk is changed.
"""

from __future__ import annotations

import enum
import logging
import os
import secrets
from pathlib import Path

import keyring
import keyring.errors
import msgspec
import sqlcipher3

log = logging.getLogger("ariadne.client")

SERVICE = "ariadne"
KEY_RECORD = "ariadne.key"
KEY_BYTES = 32
RECOMMENDED_KEYRING = 1  # keyring: "a priority of one or greater is recommended"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
_PLAIN_HEADER = b"SQLite format 3\x00"


def _quiet_sqlcipher() -> None:
    """SQLCipher logs a failed page check (a wrong key) to stderr; ProfileLocked says it better.
    The log level is process-wide, so it is set on a connection of its own."""
    connection = sqlcipher3.connect(":memory:")
    connection.execute("PRAGMA cipher_log_level = NONE")
    connection.close()


_quiet_sqlcipher()

# The driver binds str, int, float and bytearray parameters directly, but looks every ``bytes``
# parameter up through the adaptation protocol (PEP 246): a key tuple, a registry miss, then
# ``__adapt__`` and ``__conform__`` lookups that raise and catch AttributeError. Message ids
# are bytes in nearly every statement, and that path cost about 1 µs per parameter, as much as
# inserting a row. With an adapter registered for bytes (the identity: ``bytes(b) is b``), the
# first registry lookup finds it. Process-wide, like the log level: only profiles use sqlcipher3.
sqlcipher3.register_adapter(bytes, bytes)


class KeyPlace(enum.Enum):
    KEYRING = "keyring"  # the OS keyring holds the key
    FILE = "file"  # the key record holds the key: protected by file permissions only
    NONE = "none"  # not encrypted (a benchmark's baseline)


class KeyRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a profile's database key is: the contents of ``ariadne.key``."""

    place: KeyPlace
    entry: str = ""  # the keyring entry's name, when place is KEYRING
    key: str = ""  # the key in hex, when place is FILE


class ProfileLocked(Exception):
    """The profile database cannot be opened; the message says why, for the user. Nothing was
    changed on disk: with its key back (or the keyring unlocked) the profile opens again."""


def private_folder(directory: Path) -> None:
    """Make ``directory`` (0700) or tighten it and everything in it (folders 0700, files 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(FOLDER_MODE)  # (before anything is written in it)
    for root, folders, files in os.walk(directory):
        for name in folders:
            Path(root, name).chmod(FOLDER_MODE)
        for name in files:
            Path(root, name).chmod(FILE_MODE)


def _private_file(path: Path) -> None:
    """Create ``path`` 0600 if it does not exist (a umask only removes bits). An existing file
    was made 0600 by :func:`private_folder`."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))


def _has_database(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _is_plain(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(_PLAIN_HEADER)) == _PLAIN_HEADER


# ---------------------------------------------------------------------- the key record


def _read_record(directory: Path) -> KeyRecord | None:
    path = directory / KEY_RECORD
    if not path.exists():
        return None
    try:
        record = msgspec.json.decode(path.read_bytes(), type=KeyRecord)
        if record.place is KeyPlace.FILE:
            _key_from_hex(record.key)
    except (msgspec.DecodeError, ValueError):
        raise ProfileLocked(
            f"The key record of this profile ({path}) is damaged, so its database cannot be opened."
        ) from None
    return record


def _write_record(directory: Path, record: KeyRecord) -> None:
    """Atomically: a crash leaves the old record or the new one, never half of one."""
    path = directory / KEY_RECORD
    temporary = path.with_name(KEY_RECORD + ".new")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(msgspec.json.encode(record))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _key_from_hex(text: str) -> bytes:
    key = bytes.fromhex(text)
    if len(key) != KEY_BYTES:
        raise ValueError("a database key has 32 bytes")
    return key


# ---------------------------------------------------------------------- keyring


def _store_in_keyring(key: bytes) -> tuple[KeyRecord | None, str]:
    """The record of a key stored in the OS keyring, or None and why it could not be."""
    backend = keyring.get_keyring()
    if backend.priority < RECOMMENDED_KEYRING:
        return None, f"no OS keyring is available (keyring offers {type(backend).__module__})"
    entry = f"profile-{secrets.token_hex(8)}"
    try:
        keyring.set_password(SERVICE, entry, key.hex())
        kept = keyring.get_password(SERVICE, entry) == key.hex()
    except Exception as exc:  # a backend fails in ways of its own (D-Bus, a dismissed prompt)
        return None, f"the OS keyring refused the key ({type(exc).__name__})"
    if not kept:
        return None, "the OS keyring did not keep the key"
    return KeyRecord(KeyPlace.KEYRING, entry=entry), ""


def _from_keyring(record: KeyRecord) -> bytes:
    try:
        stored = keyring.get_password(SERVICE, record.entry)
    except Exception as exc:  # as above: the user gets a sentence, not a backend's traceback
        raise ProfileLocked(
            f"The OS keyring did not give this profile's database key ({type(exc).__name__}): "
            "unlock the keyring and open the profile again."
        ) from None
    if stored is None:
        raise ProfileLocked(
            f"This profile's database key is not in the OS keyring (service '{SERVICE}', entry "
            f"'{record.entry}'): without it the profile cannot be opened. Nothing was changed."
        )
    try:
        return _key_from_hex(stored)
    except ValueError:
        raise ProfileLocked(
            f"The OS keyring's entry '{record.entry}' for this profile is not a database key."
        ) from None


def _forget_in_keyring(record: KeyRecord) -> None:
    if record.place is KeyPlace.KEYRING:
        try:
            keyring.delete_password(SERVICE, record.entry)
        except Exception as exc:  # already gone, or no keyring now: nothing left to delete
            log.info("keyring entry %s not deleted: %s", record.entry, type(exc).__name__)


def _new_key(directory: Path) -> tuple[bytes, KeyPlace]:
    """A fresh key, stored in the OS keyring or else in the key record; replaces any record."""
    try:
        old = _read_record(directory)
    except ProfileLocked:  # a damaged record is replaced; what it named cannot be found anyway
        old = None
    key = os.urandom(KEY_BYTES)
    record, why = _store_in_keyring(key)
    if record is None:
        log.warning(
            "%s: %s, so the database key is kept in %s beside the database: the profile is "
            "protected only by its file permissions",
            directory,
            why,
            KEY_RECORD,
        )
        record = KeyRecord(KeyPlace.FILE, key=key.hex())
    _write_record(directory, record)
    if old is not None:
        _forget_in_keyring(old)
    return key, record.place


def forget_key(directory: Path) -> None:
    """Delete the profile's key: its keyring entry and its record (deleting local data)."""
    try:
        record = _read_record(directory)
    except ProfileLocked:
        record = None
    if record is not None:
        _forget_in_keyring(record)
    (directory / KEY_RECORD).unlink(missing_ok=True)


# ---------------------------------------------------------------------- the database


def open_database(
    directory: Path, path: Path, encrypt: bool = True
) -> tuple[sqlcipher3.Connection, KeyPlace]:
    """Open (or create) the profile database ``path`` in ``directory``: a SQLCipher connection
    keyed before anything else, and where its key is kept. With ``encrypt`` false a new or plain
    profile stays plain (for benchmarks); an encrypted one still opens with its key."""
    private_folder(directory)
    exists = _has_database(path)
    if exists and _is_plain(path):
        if not encrypt:
            return _connect(path, None), KeyPlace.NONE
        key, place = _new_key(directory)
        try:
            _encrypt_plain(path, key)
        except ProfileLocked:
            forget_key(directory)  # the new key encrypts nothing: a refusal changes nothing
            raise
        log.info("%s: the profile database was encrypted", directory)
        return _connect(path, key), place
    record = _read_record(directory)
    if record is None:
        if exists:
            raise ProfileLocked(
                f"This profile's database is encrypted but its key record ({KEY_RECORD}) is "
                "missing: without its key the profile cannot be opened. Nothing was changed."
            )
        if not encrypt:
            return _connect(path, None), KeyPlace.NONE
        key, place = _new_key(directory)
    elif not exists:  # a record left by a creation that never got as far as the database
        key, place = _new_key(directory)
    elif record.place is KeyPlace.KEYRING:
        key, place = _from_keyring(record), KeyPlace.KEYRING
    else:
        key, place = _key_from_hex(record.key), KeyPlace.FILE
        log.warning(
            "%s: the database key is kept in %s beside the database (no OS keyring): the profile "
            "is protected only by its file permissions",
            directory,
            KEY_RECORD,
        )
    return _connect(path, key), place


def _connect(path: Path, key: bytes | None) -> sqlcipher3.Connection:
    # Created 0600 first: SQLite gives its -wal, -shm and -journal files the database's mode.
    _private_file(path)
    db = sqlcipher3.connect(path, isolation_level="DEFERRED")
    if key is not None:
        db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError:
        db.close()
        raise ProfileLocked(
            "This profile's database does not open with its key (the key is wrong, or the file "
            "is damaged). Nothing was changed."
        ) from None
    return db


def _encrypt_plain(path: Path, key: bytes) -> None:
    """Encrypt a plain SQLite profile in place; on a crash before the swap it is still plain
    (and is encrypted on the next open), after it, it is encrypted."""
    encrypted = path.with_name(path.name + ".encrypting")
    for leftover in (encrypted, encrypted.with_name(encrypted.name + "-journal")):
        leftover.unlink(missing_ok=True)
    plain = sqlcipher3.connect(path)
    try:
        busy = plain.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            raise ProfileLocked("This profile is open in another Ariadne: close that one first.")
        _private_file(encrypted)
        version = plain.execute("PRAGMA user_version").fetchone()[0]
        plain.execute("ATTACH DATABASE ? AS encrypted KEY ?", (str(encrypted), f"x'{key.hex()}'"))
        plain.execute("SELECT sqlcipher_export('encrypted')")
        plain.execute(f"PRAGMA encrypted.user_version = {int(version)}")
        plain.execute("DETACH DATABASE encrypted")
    finally:
        plain.close()
    with encrypted.open("rb+") as file:
        os.fsync(file.fileno())
    # Keep the plain file open across the swap, to overwrite its blocks once nothing needs them.
    with path.open("rb+") as old:
        os.replace(encrypted, path)
        zeros = bytes(1 << 20)
        for _ in range(0, os.fstat(old.fileno()).st_size, len(zeros)):
            old.write(zeros)
        old.flush()
        os.fsync(old.fileno())
