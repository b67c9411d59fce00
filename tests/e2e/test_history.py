"""Encrypted history on the relay (Labyrinth): saving, restoring by recovery code or PIN,
lazy loading, and what the relay keeps. Real relay, real vault, real SQLite."""

from __future__ import annotations

import logging

import pytest

from client.core.events import EpochChainRefused
from client.core.recovery import WrongRecoveryCode
from shared.errors import VerificationError
from shared.pin import VaultLocked, WrongPin
from shared.recovery_code import InvalidRecoveryCode
from tests.conftest import eventually, history, seed_history

pytestmark = pytest.mark.backends()

PIN = "2468"


async def _chat(alice, bob, label: str, count: int = 5) -> None:
    """``count`` messages each way, waiting until both sides hold all of them, settled."""
    before = len(history(alice, bob.username))
    for i in range(count):
        await alice.send_text(bob.username, f"{label} from alice {i}")
        await bob.send_text(alice.username, f"{label} from bob {i}")
    total = before + 2 * count
    await eventually(
        lambda: (
            len(history(alice, bob.username)) == total
            and len(history(bob, alice.username)) == total
            and all(m.server_ts for m in alice.messages(bob.username))
        ),
        message=f"{label} exchanged",
    )


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_restore_by_code_and_by_pin_sees_every_message_across_epoch_changes(
    accounts, relay, caplog
):
    caplog.set_level(logging.DEBUG)
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    carol = await accounts.create("carol")
    await _chat(alice, bob, "epoch 1")
    await alice.setup_recovery()  # epoch 2: the first code (rotated below)
    await _chat(alice, carol, "epoch 2")
    laptop = await accounts.add_device(alice, "Laptop")  # epoch 3: a device joins
    await _chat(alice, bob, "epoch 3")
    code = await alice.setup_recovery(pin=PIN)  # epoch 4: a new code, and the PIN
    await _chat(alice, carol, "epoch 4")
    assert alice.epochs.latest_seq() == 4
    await eventually(lambda: laptop.epochs.latest_seq() == 4, message="laptop follows epochs")
    await alice.wait_saved()
    await laptop.wait_saved()

    by_code = await accounts.pending("alice", "Restored by code")
    threads = await by_code.restore(code=code)
    assert sorted(threads) == ["bob", "carol"]
    await by_code.backfill()
    by_pin = await accounts.pending("alice", "Restored by PIN")
    await by_pin.restore(pin=PIN)
    await by_pin.backfill()
    # The approved laptop opened its grant, and so the history from before it joined.
    await eventually(
        lambda: laptop.mailbox.cursor("carol") is not None, message="laptop loads history"
    )
    await laptop.backfill()
    assert by_code.is_member and by_pin.is_member and by_code.holds_account_key

    await _chat(alice, bob, "after restore")  # epochs 5 and 6 were opened by the restores
    for device in (by_code, by_pin, laptop):
        await eventually(
            lambda d=device: all(
                history(d, peer) == history(alice, peer) for peer in ("bob", "carol")
            ),
            message=f"{device.device_name} has every message in the same order",
        )
    assert len(history(by_pin, "bob")) == 30 and len(history(by_pin, "carol")) == 20

    # What the relay keeps, and what anyone logged: no text, no code, no PIN, no root.
    await alice.wait_saved()
    roots = [alice.epochs.root(seq) for seq in range(1, alice.epochs.latest_seq() + 1)]
    secrets = [code.encode(), PIN.encode(), *roots, b"epoch 3 from alice", b"from bob"]
    for path in relay.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s in data for s in secrets), f"{path.name} holds a secret"
    logged = caplog.text
    assert code not in logged and "from alice" not in logged and PIN not in logged


async def test_wrong_codes_are_told_apart_and_a_typo_is_corrected(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    code = await alice.setup_recovery()
    other_code = await bob.setup_recovery()
    await _chat(alice, bob, "hello", 2)
    await alice.wait_saved()

    device = await accounts.pending("alice")
    with pytest.raises(InvalidRecoveryCode):
        await device.restore(code="not a code")
    with pytest.raises(WrongRecoveryCode):
        await device.restore(code=other_code)
    assert not device.is_member
    two = "".join(("X" if c != "X" else "Y") if i in (7, 30) else c for i, c in enumerate(code))
    with pytest.raises((InvalidRecoveryCode, WrongRecoveryCode)):  # never "corrected"
        await device.restore(code=two)
    assert not device.is_member
    typo = code[:7] + ("X" if code[7] != "X" else "Y") + code[8:]
    await device.restore(code=typo.lower())  # one wrong character and lower case
    assert history(device, "bob") == history(alice, "bob")


def _vault_files(relay) -> dict[str, bytes]:
    """Every file of the vault's folder as it is on disk while the relay runs (-wal included)."""
    folder = relay.data_dir / "vault"
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_pin_vault_allows_ten_wrong_guesses_then_deletes_the_secret(accounts, relay):
    alice = await accounts.create("alice")
    await alice.setup_recovery(pin=PIN)
    device = await accounts.pending("alice")
    secrets = list(
        relay.relay.vault._db.execute("SELECT verifier, wrapped FROM backups").fetchone()
    )
    for tries_left in (9, 8, 7, 6, 5):
        with pytest.raises(WrongPin) as wrong:
            await device.restore(pin="0000")
        assert wrong.value.tries_left == tries_left
    await alice.setup_recovery(pin=PIN)  # backing up again does not reset the count
    secrets += relay.relay.vault._db.execute("SELECT wrapped FROM backups").fetchone()
    files = _vault_files(relay)
    assert "vault.sqlite3-wal" in files
    # The search finds them while they are kept (so finding nothing below means something).
    assert all(any(secret in data for data in files.values()) for secret in secrets)
    for tries_left in (4, 3, 2, 1):
        with pytest.raises(WrongPin) as wrong:
            await device.restore(pin="1111")
        assert wrong.value.tries_left == tries_left
    with pytest.raises(VaultLocked):
        await device.restore(pin="2222")  # the tenth wrong PIN
    with pytest.raises(VaultLocked):
        await device.restore(pin=PIN)  # the secret is gone
    vault_db = (relay.data_dir / "vault" / "vault.sqlite3").read_bytes()
    assert vault_db.count(b"\x00" * 64)  # (secure_delete overwrote the row's old contents)
    for name, data in _vault_files(relay).items():  # the verifier and both wrapped secrets
        assert not any(secret in data for secret in secrets), f"a secret is left in {name}"
    row = relay.relay.vault._db.execute("SELECT verifier, wrapped, locked FROM backups").fetchone()
    assert row == (None, None, 1)
    assert not device.is_member


async def test_opening_a_long_conversation_fetches_one_page_not_all(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    code = await alice.setup_recovery()
    await _chat(alice, bob, "live", 1)
    # 10,000 stored messages, saved through the real mailbox path (sealed, uploaded in batches).
    seed_history(alice, "bob", bob.device_id, 10_000, alice.messages("bob")[-1].server_ts)
    await alice.wait_saved(timeout=120)

    device = await accounts.pending("alice")
    assert await device.restore(code=code) == ["bob"]
    page = device.messages("bob")
    assert len(page) == 100 and page[-1].body == "old 9999" and page[0].body == "old 9900"
    assert device.has_older("bob")
    assert await device.load_older("bob") == 100
    assert len(device.messages("bob")) == 200 and device.messages("bob")[0].body == "old 9800"


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_hostile_relay_moves_ciphertexts_truncates_and_rolls_back_epochs(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    carol = await accounts.create("carol")
    code = await alice.setup_recovery()
    await _chat(alice, bob, "to bob", 3)
    await _chat(alice, carol, "to carol", 1)
    await alice.wait_saved()
    db = relay.relay.store._db
    rows = db.execute(
        "SELECT thread_id, ts, message_id, epoch FROM mailbox WHERE username = 'alice' ORDER BY ts"
    ).fetchall()
    bob_tid, carol_tid = alice.mailbox.thread_id("bob"), alice.mailbox.thread_id("carol")
    bob_rows = [r for r in rows if r[0] == bob_tid]
    # Move one item to carol's thread, give one another message id, label one another epoch.
    moved, renamed, relabelled = bob_rows[0], bob_rows[1], bob_rows[2]
    db.execute("UPDATE mailbox SET thread_id = ? WHERE message_id = ?", (carol_tid, moved[2]))
    db.execute("UPDATE mailbox SET message_id = ? WHERE message_id = ?", (b"\x01" * 16, renamed[2]))
    db.execute("UPDATE mailbox SET epoch = 1 WHERE message_id = ?", (relabelled[2],))
    carol_newest = max((r for r in rows if r[0] == carol_tid), key=lambda r: r[1])
    sealed = db.execute("SELECT sealed FROM mailbox WHERE message_id = ?", (carol_newest[2],))
    flipped = bytearray(sealed.fetchone()[0])
    flipped[-1] ^= 1  # carol's newest item no longer opens: her thread must not vanish
    db.execute(
        "UPDATE mailbox SET sealed = ? WHERE message_id = ?", (bytes(flipped), carol_newest[2])
    )
    db.commit()

    device = await accounts.pending("alice")
    await device.restore(code=code)
    await device.backfill()
    undecryptable = [m for t in ("bob", "carol") for m in device.messages(t) if m.undecryptable]
    assert len(undecryptable) == 4
    genuine = {m[0] for t in ("bob", "carol") for m in history(alice, t)}
    readable = {
        m.message_id for t in ("bob", "carol") for m in device.messages(t) if not m.undecryptable
    }
    assert readable == genuine - {moved[2], renamed[2], relabelled[2], carol_newest[2]}

    # Truncation: the relay hides the newest epoch (the one the restore just opened).
    refused = []
    alice.add_listener(lambda e: refused.append(e) if isinstance(e, EpochChainRefused) else None)
    newest = db.execute("SELECT max(seq) FROM epochs WHERE username = 'alice'").fetchone()[0]
    hidden = db.execute(
        "SELECT * FROM epochs WHERE username = 'alice' AND seq = ?", (newest,)
    ).fetchone()
    db.execute("DELETE FROM epochs WHERE username = 'alice' AND seq = ?", (newest,))
    db.commit()
    fresh = await accounts.pending("alice", "Another")
    with pytest.raises(VerificationError, match="newest device list"):
        await fresh.restore(code=code)
    assert not fresh.is_member
    # Rollback: the relay forgets its newest epochs. A device that knows them keeps sealing
    # under the newest and never under an older one; the relay (which now calls that epoch
    # stale) gets nothing a removed device could read.
    db.execute("INSERT INTO epochs VALUES (?, ?, ?, ?, ?)", hidden)
    db.execute("DELETE FROM epochs WHERE username = 'alice' AND seq >= ?", (newest - 1,))
    db.commit()
    await alice.history.refresh_epochs()
    assert alice.epochs.latest_seq() == newest  # what it knew stays in force
    sent = await alice.send_text("bob", "after the rollback")
    await eventually(lambda: bob.messages("alice")[-1].body == "after the rollback")
    await eventually(lambda: refused, message="alice notices the rollback")
    assert "no longer serves the newest epoch" in refused[-1].reason
    rows = db.execute(
        "SELECT count(*) FROM mailbox WHERE username = 'alice' AND message_id = ?",
        (sent.message_id,),
    ).fetchone()[0]
    assert rows == 0
    assert alice._store.unsaved_count() == 1  # kept, to be saved once the chain is whole


async def test_a_device_without_membership_gets_no_entropy(accounts, relay):
    from client.core.link import RelayError
    from shared import wire
    from shared.recovery_code import generate, virtual_device

    alice = await accounts.create("alice")
    code = await alice.setup_recovery()
    pending = await accounts.pending("alice")
    own = await pending.link.request(lambda rid: wire.FetchEpochs(rid=rid, since=0))
    assert own.epochs and all(e.grant is None for e in own.epochs)  # not a member: no grant
    for member_id, proof in [
        (alice.device_id, None),  # another device's grants
        (virtual_device(code).member_id, None),  # the code's, without proof
        (
            virtual_device(code).member_id,
            virtual_device(generate()).membership_proof("alice", pending.device_id),
        ),
        (
            virtual_device(code).member_id,
            virtual_device(code).membership_proof("alice", alice.device_id),
        ),
    ]:
        with pytest.raises(RelayError, match="not_a_member"):
            await pending.link.request(
                lambda rid, m=member_id, p=proof: wire.FetchEpochs(
                    rid=rid, since=0, member_id=m, proof=p
                )
            )
    with pytest.raises(RelayError, match="pending_device"):
        await pending.link.request(lambda rid: wire.ListMailboxThreads(rid=rid))


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_the_code_not_the_relay_decides_the_account_key_of_a_restored_device(accounts, relay):
    from shared.device_list import DeviceEntry, first_device_list
    from shared.identity import SigningKey, device_id_for

    alice = await accounts.create("alice")
    code = await alice.setup_recovery()
    db = relay.relay.store._db
    genuine = db.execute(
        "SELECT version, signed_list FROM device_lists WHERE username = 'alice'"
    ).fetchone()
    # At the new device's login the relay shows a list under an account key of its own.
    evil, evil_device = SigningKey.generate(), SigningKey.generate()
    fake = first_device_list(
        evil,
        "alice",
        DeviceEntry(
            device_id=device_id_for(evil_device.public),
            name="Desktop",
            sign_public=evil_device.public,
            identity_key=bytes(32),
            storage_key=bytes(32),
            added_at=0,
        ),
        evil_device,
    )
    db.execute(
        "UPDATE device_lists SET version = 1, signed_list = ? WHERE username = 'alice'", (fake,)
    )
    db.commit()
    device = await accounts.pending("alice")
    assert device.directory.known("alice") is None  # what the relay showed is not trusted
    db.execute(
        "UPDATE device_lists SET version = ?, signed_list = ? WHERE username = 'alice'", genuine
    )
    db.commit()
    await device.restore(code=code)
    assert device.is_member and device.own_devices().amk_public == alice.own_devices().amk_public
