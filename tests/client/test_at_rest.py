"""A profile at rest: private folder and files, an encrypted database, and its key in the OS
keyring or (where there is none, as on this machine) in a key record beside it.

The keyring path runs against :class:`MemoryKeyring`, a keyring backend registered with
``keyring.set_keyring``: the client goes through the ``keyring`` package's real API exactly as
with the OS keyring. (``keyrings.alt``'s file backend is not used: installed, it becomes the
default keyring of every program in the environment, storing in plain text, and the client
rightly refuses it, as any backend that ``keyring`` does not recommend.)
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import msgspec
import pytest
import sqlcipher3

from client.core import login
from client.core.at_rest import (
    KEY_RECORD,
    SERVICE,
    KeyPlace,
    KeyRecord,
    ProfileLocked,
    open_database,
)
from client.core.client import AriadneClient, RegistrationError
from client.core.profile_lock import LOCK_NAME
from client.core.storage import DB_NAME, ProfileStore
from tests.conftest import eventually, profile_contents


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend keeping its entries in a dict (as a desktop's keyring daemon keeps
    them in its own memory), set with ``keyring.set_keyring``. Its constructor takes an argument
    so that ``keyring``'s discovery (which builds every backend class it can without arguments)
    never makes it the default for the other tests."""

    priority = 5  # as the OS keyrings (Secret Service, macOS Keychain, Windows)

    def __init__(self, entries: dict[tuple[str, str], str]) -> None:
        super().__init__()
        self.entries = entries

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such entry")


class NotRecommendedKeyring(MemoryKeyring):
    priority = 0.5  # as keyrings.alt's plaintext file


class ForgetfulKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        pass  # accepts, keeps nothing (a keyring whose storage is not writable, say)


class RefusingKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the user dismissed the prompt")


@pytest.fixture
def os_keyring() -> MemoryKeyring:
    backend = MemoryKeyring({})
    keyring.set_keyring(backend)
    return backend


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual desktop umask (files 0644 unless the client says otherwise); and whatever
    keyring a test sets is undone after it."""
    before, backend = os.umask(0o022), keyring.get_keyring()
    yield
    os.umask(before)
    keyring.set_keyring(backend)


def no_keyring() -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())


def new_profile(directory: Path) -> ProfileStore:
    return login.new_profile(directory, "ws://127.0.0.1:9", "alice", "Desktop", "create", True)


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def fingerprint(directory: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files(directory).items()}


def database_key(directory: Path, backend: MemoryKeyring | None = None) -> bytes:
    record = msgspec.json.decode((directory / KEY_RECORD).read_bytes(), type=KeyRecord)
    if record.place is KeyPlace.KEYRING:
        assert backend is not None
        return bytes.fromhex(backend.entries[(SERVICE, record.entry)])
    return bytes.fromhex(record.key)


# Usernames long enough that encrypted pages, random bytes, cannot hold them by chance (a
# three-letter name turns up in a megabyte of random bytes one time in sixteen).
FIRST, SECOND = "alice-of-the-lighthouse", "bob-by-the-north-door"


async def talk(accounts) -> tuple[AriadneClient, AriadneClient, list[str]]:  # type: ignore[no-untyped-def]
    alice = await accounts.create(FIRST)
    bob = await accounts.create(SECOND)
    texts = [f"meet at the lighthouse {i}" for i in range(3)]
    for text in texts:
        await alice.send_text(SECOND, text)
    await eventually(lambda: [m.body for m in bob.messages(FIRST)] == texts)
    await bob.send_text(FIRST, "the north door is open")
    await eventually(lambda: alice.messages(SECOND)[-1].body == "the north door is open")
    return alice, bob, [*texts, "the north door is open"]


async def test_profile_folder_is_0700_and_every_file_0600_after_real_use(accounts):
    alice, bob, _ = await talk(accounts)
    for client in (alice, bob):
        folder = client.profile_dir
        assert (folder / (DB_NAME + "-wal")).stat().st_size > 0, "the WAL is in use"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        names = sorted(p.name for p in folder.iterdir())
        assert {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", KEY_RECORD} <= set(names)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
        assert modes == dict.fromkeys(names, 0o600)


async def test_an_older_profiles_folder_and_files_are_made_private_on_open(accounts):
    alice = await accounts.create("alice")
    await accounts.stop(alice)
    folder = alice.profile_dir
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    alice = await accounts.start(alice)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}


async def test_the_database_holds_no_message_text_and_no_key_and_reads_fine(accounts):
    alice, bob, texts = await talk(accounts)
    for client in (alice, bob):
        store = client._store
        secrets = [
            bytes(store.get(name))  # type: ignore[arg-type]
            for name in ("sign_seed", "storage_seed", "amk_seed", "thread_key")
        ]
        secrets.append(str(store.get("x3dh_state"))[-64:].encode())
        secrets.append(database_key(client.profile_dir))
        decrypted = profile_contents(store)
        assert all(t.encode() in decrypted for t in texts)
        assert all(s in decrypted for s in secrets[:-1])  # (so the search below can find them)
        stored = files(client.profile_dir)
        assert stored[DB_NAME + "-wal"], "the WAL holds pages"
        for name, data in stored.items():
            assert not any(t.encode() in data for t in texts), f"{name} holds message text"
            assert FIRST.encode() not in data and SECOND.encode() not in data, name
            if name != KEY_RECORD:
                for secret in secrets:
                    assert secret not in data and secret.hex().encode() not in data, name
    bob = await accounts.reopen(bob)
    assert [m.body for m in bob.messages(FIRST)] == texts
    assert bob.database_key_place is KeyPlace.FILE  # no OS keyring on this machine


def test_without_an_os_keyring_the_key_is_kept_beside_the_database_and_said_so(tmp_path, caplog):
    no_keyring()
    store = new_profile(tmp_path / "p")
    assert store.key_place is KeyPlace.FILE
    assert "protected only by its file permissions" in caplog.text
    store.close()
    caplog.clear()
    again = ProfileStore(tmp_path / "p")
    assert again.key_place is KeyPlace.FILE and again.get("username") == "alice"
    assert "protected only by its file permissions" in caplog.text
    again.close()


def test_with_an_os_keyring_the_key_is_there_and_nowhere_on_disk(tmp_path, os_keyring):
    folder = tmp_path / "p"
    store = new_profile(folder)
    assert store.key_place is KeyPlace.KEYRING
    store.close()
    ((service, entry), key) = next(iter(os_keyring.entries.items()))
    assert service == "ariadne" and len(bytes.fromhex(key)) == 32
    for name, data in files(folder).items():
        assert key.encode() not in data and bytes.fromhex(key) not in data, name
    again = ProfileStore(folder)
    assert again.key_place is KeyPlace.KEYRING and again.get("username") == "alice"
    again.close()

    # The key gone from the keyring: a clear error, and the profile left as it was.
    before = fingerprint(folder)
    del os_keyring.entries[(service, entry)]
    with pytest.raises(ProfileLocked, match="not in the OS keyring"):
        ProfileStore(folder)
    assert fingerprint(folder) == before
    # No keyring at all now (say, another desktop session): also a clear error.
    no_keyring()
    with pytest.raises(ProfileLocked, match="did not give"):
        ProfileStore(folder)
    assert fingerprint(folder) == before
    keyring.set_keyring(os_keyring)
    os_keyring.entries[(service, entry)] = key
    assert ProfileStore(folder).get("username") == "alice"


def test_a_keyring_that_keyring_does_not_recommend_is_not_used(tmp_path):
    backend = NotRecommendedKeyring({})
    keyring.set_keyring(backend)
    store = new_profile(tmp_path / "p")
    assert store.key_place is KeyPlace.FILE and backend.entries == {}
    store.close()


def test_a_keyring_that_refuses_the_key_leaves_it_beside_the_database(tmp_path):
    keyring.set_keyring(RefusingKeyring({}))
    store = new_profile(tmp_path / "p")
    assert store.key_place is KeyPlace.FILE
    store.close()
    assert ProfileStore(tmp_path / "p").get("username") == "alice"


def test_a_keyring_that_does_not_keep_the_key_is_not_relied_on(tmp_path):
    keyring.set_keyring(ForgetfulKeyring({}))
    store = new_profile(tmp_path / "p")
    assert store.key_place is KeyPlace.FILE
    store.close()
    assert ProfileStore(tmp_path / "p").get("username") == "alice"


def test_a_record_left_by_an_interrupted_creation_does_not_block_a_new_profile(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    stale = KeyRecord(KeyPlace.KEYRING, entry="profile-gone")
    (folder / KEY_RECORD).write_bytes(msgspec.json.encode(stale))
    no_keyring()
    store = new_profile(folder)
    assert store.key_place is KeyPlace.FILE and store.get("username") == "alice"


def test_a_wrong_or_missing_key_is_a_clear_error_and_changes_nothing(tmp_path, capfd):
    no_keyring()
    folder = tmp_path / "p"
    new_profile(folder).close()
    record = (folder / KEY_RECORD).read_bytes()
    before = fingerprint(folder)

    wrong = KeyRecord(KeyPlace.FILE, key=os.urandom(32).hex())
    (folder / KEY_RECORD).write_bytes(msgspec.json.encode(wrong))
    with pytest.raises(ProfileLocked, match="does not open with its key"):
        ProfileStore(folder)
    assert "hmac check failed" not in capfd.readouterr().err  # said once, by ProfileLocked
    short = KeyRecord(KeyPlace.FILE, key=os.urandom(16).hex())
    (folder / KEY_RECORD).write_bytes(msgspec.json.encode(short))
    with pytest.raises(ProfileLocked, match=r"key record of this profile .* is damaged"):
        ProfileStore(folder)
    (folder / KEY_RECORD).write_bytes(b"{not json")
    with pytest.raises(ProfileLocked, match=r"key record of this profile .* is damaged"):
        ProfileStore(folder)
    (folder / KEY_RECORD).unlink()
    with pytest.raises(ProfileLocked, match=r"key record .* is missing"):
        ProfileStore(folder)
    assert fingerprint(folder) == {n: h for n, h in before.items() if n != KEY_RECORD}
    (folder / KEY_RECORD).write_bytes(record)
    assert ProfileStore(folder).get("username") == "alice"


async def test_opening_a_locked_profile_raises_before_connecting(tmp_path):
    no_keyring()
    folder = tmp_path / "p"
    new_profile(folder).close()
    (folder / KEY_RECORD).unlink()
    with pytest.raises(ProfileLocked):
        await AriadneClient.open(folder)
    assert ProfileStore.exists(folder)


def test_a_plain_profile_is_encrypted_when_opened(tmp_path):
    no_keyring()
    folder = tmp_path / "p"
    store = new_profile(folder)
    from client.core.events import MessageStatus, StoredMessage

    store.insert_message(
        StoredMessage(
            message_id=b"\x01" * 16,
            thread="bob",
            sender_user="bob",
            sender_device="d",
            sent_at=1,
            server_ts=2,
            body="the old plaintext",
            status=MessageStatus.READ,
        )
    )
    store.commit()
    key = database_key(folder)
    store.close()
    # Make the profile an older client's: the same database, unencrypted, and no key record.
    plain = folder / "plain.sqlite3"
    db = sqlcipher3.connect(folder / DB_NAME)
    db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.execute("ATTACH DATABASE ? AS plain KEY ''", (str(plain),))
    db.execute("SELECT sqlcipher_export('plain')")
    db.execute(f"PRAGMA plain.user_version = {version}")
    db.execute("DETACH DATABASE plain")
    db.close()
    os.replace(plain, folder / DB_NAME)
    (folder / KEY_RECORD).unlink()
    assert b"the old plaintext" in (folder / DB_NAME).read_bytes()
    old_blocks = tmp_path / "same-inode"  # a second name for the plain file's blocks
    os.link(folder / DB_NAME, old_blocks)

    db, place = open_database(folder, folder / DB_NAME)  # what ProfileStore is given
    assert place is KeyPlace.FILE and db.execute("PRAGMA user_version").fetchone()[0] == version
    db.close()
    store = ProfileStore(folder)
    assert store.key_place is KeyPlace.FILE
    assert store.message(b"\x01" * 16).body == "the old plaintext"  # type: ignore[union-attr]
    store.close()
    assert b"the old plaintext" not in old_blocks.read_bytes()  # overwritten once replaced
    assert sorted(p.name for p in folder.iterdir()) == [KEY_RECORD, LOCK_NAME, DB_NAME]
    assert b"the old plaintext" not in (folder / DB_NAME).read_bytes()
    assert not (folder / DB_NAME).read_bytes().startswith(b"SQLite format 3")
    assert ProfileStore(folder).get("username") == "alice"


async def test_a_refused_registration_leaves_no_key_behind(accounts, relay, os_keyring):
    await accounts.create("alice")
    folder = accounts.root / "second-alice"
    with pytest.raises(RegistrationError):
        await AriadneClient.create_account(folder, relay.url, "alice", "x" * 12, "Desktop")
    assert len(os_keyring.entries) == 1  # only the first alice's
    assert not (folder / KEY_RECORD).exists() and not ProfileStore.exists(folder)


async def test_deleting_local_data_deletes_the_key_in_the_keyring(accounts, os_keyring):
    alice = await accounts.create("alice")
    assert alice.database_key_place is KeyPlace.KEYRING and len(os_keyring.entries) == 1
    accounts.clients.remove(alice)
    await alice.delete_local_data()
    assert os_keyring.entries == {} and not alice.profile_dir.exists()


async def test_devices_with_keys_in_the_os_keyring_talk_and_reopen(accounts, os_keyring):
    alice, bob, texts = await talk(accounts)
    assert alice.database_key_place is bob.database_key_place is KeyPlace.KEYRING
    keys = list(os_keyring.entries.values())
    assert len(keys) == 2
    for client in (alice, bob):
        for name, data in files(client.profile_dir).items():
            assert not any(k.encode() in data or bytes.fromhex(k) in data for k in keys), name
    bob = await accounts.reopen(bob)
    assert [m.body for m in bob.messages(FIRST)] == texts
    await bob.send_text(FIRST, "reopened from the keyring")
    await eventually(lambda: alice.messages(SECOND)[-1].body == "reopened from the keyring")


def test_a_new_key_replacing_a_records_key_deletes_its_keyring_entry(tmp_path, os_keyring):
    """A record left by an interrupted creation names a keyring entry that encrypts nothing: the
    new key replaces it, and the old entry is not left behind in the user's keyring."""
    folder = tmp_path / "p"
    folder.mkdir()
    os_keyring.entries[(SERVICE, "profile-interrupted")] = os.urandom(32).hex()
    stale = KeyRecord(KeyPlace.KEYRING, entry="profile-interrupted")
    (folder / KEY_RECORD).write_bytes(msgspec.json.encode(stale))
    store = new_profile(folder)
    assert store.key_place is KeyPlace.KEYRING
    store.close()
    (only,) = os_keyring.entries
    assert only != (SERVICE, "profile-interrupted")
    assert database_key(folder, os_keyring) == bytes.fromhex(os_keyring.entries[only])


def test_a_plain_profile_encrypted_in_place_is_private_at_once(tmp_path):
    """The encrypted copy replaces the plain file: it is created 0600 before SQLite writes it,
    else it would carry the umask's 0644 (and so would its -wal) until the next open."""
    no_keyring()
    folder = tmp_path / "p"
    folder.mkdir()
    plain = sqlcipher3.connect(folder / DB_NAME)
    plain.execute("CREATE TABLE notes (body TEXT)")
    plain.execute("INSERT INTO notes VALUES ('the old plaintext')")
    plain.commit()
    plain.close()
    db, place = open_database(folder, folder / DB_NAME)
    assert place is KeyPlace.FILE
    db.execute("INSERT INTO notes VALUES ('new')")
    db.commit()
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    db.close()


def test_a_plain_profile_open_elsewhere_is_not_encrypted_under_it(tmp_path):
    """Another Ariadne still reading the plain profile: encrypting it now would swap the file
    under that one and lose what it writes next, so the open is refused and nothing changes."""
    no_keyring()
    folder = tmp_path / "p"
    folder.mkdir()
    other = sqlcipher3.connect(folder / DB_NAME)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("CREATE TABLE notes (body TEXT)")
    other.execute("INSERT INTO notes VALUES ('the old plaintext')")
    other.commit()
    reader = sqlcipher3.connect(folder / DB_NAME, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM notes").fetchone()  # holds a read snapshot
    with pytest.raises(ProfileLocked, match="open in another Ariadne"):
        open_database(folder, folder / DB_NAME)
    reader.execute("COMMIT")
    reader.close()
    other.close()
    assert (folder / DB_NAME).read_bytes().startswith(b"SQLite format 3")
    # Nothing left behind either: no key that encrypts nothing, no half-made encrypted copy.
    assert not (folder / KEY_RECORD).exists()
    assert not list(folder.glob("*.encrypting*"))
