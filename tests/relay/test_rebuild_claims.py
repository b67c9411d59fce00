"""A rebuild cannot claim another account's device: the rebuilding account holds its own account
key, so it can sign a list naming any device it has seen (bob's id and keys are in bob's public
list), and a relay that took it would make bob's device a member of that account (senders to it
would be made to queue for bob's device, and the relay's one-device-one-account rule would
break). Against a real store."""

from __future__ import annotations

from shared import wire
from shared.device_list import next_device_list
from tests.relay.test_handlers_rebuild import _wiped_and_created_again


async def test_a_rebuilt_list_naming_another_accounts_device_is_refused(kit):
    alice = await kit.create("alice")
    alice, account, epochs = await _wiped_and_created_again(kit, alice)
    bob = await kit.create("bob")
    claiming = next_device_list(
        account.amk, alice.key, account.device_list, account.signed_list, add=bob.entry()
    )
    rebuild = wire.RebuildAccount(rid=5, signed_list=claiming, epochs=epochs)
    assert await kit.refused(alice, rebuild) == "device_taken"
    assert bob.device_id not in kit.relay.members("alice")
    assert kit.store.device_list("alice") is None
    assert kit.store.device(bob.device_id).username == "bob"
    # Alice's own list still rebuilds her account.
    rebuild = wire.RebuildAccount(rid=6, signed_list=account.signed_list, epochs=epochs)
    assert isinstance(await kit.call(alice, rebuild), wire.Ok)
    assert kit.relay.members("alice") == {alice.device_id}
