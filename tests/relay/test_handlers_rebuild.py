"""Re-creating an account on a relay that lost it (``RebuildAccount``) against a real store:
only right after the account was created again, only a list signed by the account key naming the
asking device, only epochs chained from the first; the listed devices are registered again."""

from __future__ import annotations

from shared import wire
from shared.device_list import first_device_list
from shared.identity import SigningKey
from tests.relay.conftest import PASSWORD

ACCOUNT_TABLES = ("devices", "accounts", "device_lists", "device_list_history", "list_members")


async def _wiped_and_created_again(kit, device):  # type: ignore[no-untyped-def]
    """The relay loses the account; its device creates it again with the same keys."""
    account = kit.accounts[device.username]
    epochs = [
        wire.EpochRecord(signed_head=row[0], prev_root_box=row[1], account_box=row[2])
        for row in kit.store._db.execute(
            "SELECT signed_head, prev_root_box, account_box FROM epochs ORDER BY seq"
        )
    ]
    for table in (*ACCOUNT_TABLES, "epochs", "grants"):
        kit.store._db.execute(f"DELETE FROM {table}")
    kit.relay.forget_members()
    again = await kit.login(
        lambda registration, signature: wire.CreateAccount(
            rid=1,
            username=device.username,
            password=PASSWORD,
            device=registration,
            amk_public=account.amk.public,
            signature=signature,
        ),
        device.username,
        device.key,
    )
    return again, account, epochs


async def test_a_member_rebuilds_its_account_and_its_devices_are_registered_again(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    await kit.approve(alice, laptop)
    alice, account, epochs = await _wiped_and_created_again(kit, alice)
    assert kit.store.device(laptop.device_id) is None
    rebuild = wire.RebuildAccount(rid=5, signed_list=account.signed_list, epochs=epochs)
    assert isinstance(await kit.call(alice, rebuild), wire.Ok)
    assert kit.store.device_list("alice") == (2, account.signed_list)
    assert kit.store.device(laptop.device_id).sign_public == laptop.key.public
    assert kit.store.latest_epoch("alice").seq == 2
    assert kit.relay.members("alice") == {alice.device_id, laptop.device_id}
    assert await kit.refused(alice, rebuild) == "bad_request"  # only onto an empty account


async def test_a_rebuild_takes_only_the_accounts_own_signed_state(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    await kit.approve(alice, laptop)
    alice, account, epochs = await _wiped_and_created_again(kit, alice)

    other_key = SigningKey.generate()
    forged = first_device_list(other_key, "alice", alice.entry(), alice.key)
    rebuild = wire.RebuildAccount(rid=5, signed_list=forged, epochs=epochs)
    assert await kit.refused(alice, rebuild) == "bad_device_list"

    without_me = first_device_list(account.amk, "alice", laptop.entry(), laptop.key)
    rebuild = wire.RebuildAccount(rid=5, signed_list=without_me, epochs=epochs)
    assert await kit.refused(alice, rebuild) == "not_a_member"

    for broken in (epochs[1:], epochs[::-1], [epochs[0], epochs[0]]):
        rebuild = wire.RebuildAccount(rid=5, signed_list=account.signed_list, epochs=broken)
        assert await kit.refused(alice, rebuild) == "bad_epoch"
    assert kit.store.device_list("alice") is None and kit.store.device(laptop.device_id) is None
