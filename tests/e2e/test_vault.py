"""Who may replace the PIN backup: only a member device, and only with the account key's signature.
A device that has the password (pending), even one that kept the account key from before it was
removed, cannot make the owner's right PIN read as wrong. Real relay, real vault."""

from __future__ import annotations

from client.core.client import AriadneClient
from shared import wire
from shared.identity import SigningKey
from shared.pin import VaultAnswer, backup_request, stretch
from tests.conftest import Accounts, RunningRelay

PIN = "2468"


async def _backup_from(
    device: AriadneClient, pin: str, secret: str, key: SigningKey
) -> VaultAnswer:
    """A backup request made by hand, signed with ``key``, sent from ``device``."""
    vault_key = await device.link.request(lambda rid: wire.FetchVaultKey(rid=rid))
    assert isinstance(vault_key, wire.VaultKey)
    request = backup_request(
        vault_key.public, device.username, stretch(pin, device.username), secret, key
    )
    reply = await device.link.request(lambda rid: wire.VaultCall(rid=rid, sealed=request.sealed))
    assert isinstance(reply, wire.VaultReply)
    return request.open_answer(reply.sealed)


async def _owner_restores_with_the_pin(accounts: Accounts) -> None:
    restoring = await accounts.pending("alice", "Replacement")
    await restoring.restore(pin=PIN)
    assert restoring.is_member


async def test_a_device_that_kept_the_account_key_but_is_not_a_member_cannot_back_up(
    accounts: Accounts, relay: RunningRelay
) -> None:
    alice = await accounts.create("alice")
    await alice.setup_recovery(pin=PIN)
    # Someone with the password and the account key (a device removed earlier keeps it) logs in
    # again: pending, so not a member.
    intruder = await accounts.pending("alice", "Laptop")
    assert alice.account.key is not None
    answer = await _backup_from(intruder, "0000", "THE INTRUDER'S CODE", alice.account.key)
    assert answer.status == "not_a_member"
    await _owner_restores_with_the_pin(accounts)


async def test_the_vault_wants_the_account_keys_signature_even_if_the_relay_says_member(
    accounts: Accounts, relay: RunningRelay
) -> None:
    alice = await accounts.create("alice")
    await alice.setup_recovery(pin=PIN)
    intruder = await accounts.pending("alice", "Laptop")
    # A relay that wrongly counts the pending device as a member (a bug, or its operator): the
    # vault still wants the account key's signature, which a password holder does not have.
    assert relay.relay is not None
    relay.relay._members["alice"] = relay.relay.members("alice") | {intruder.device_id}
    answer = await _backup_from(intruder, "0000", "THE INTRUDER'S CODE", SigningKey.generate())
    assert answer.status == "bad_signature"
    relay.relay.forget_members("alice")
    await _owner_restores_with_the_pin(accounts)


async def test_a_member_backs_up_with_the_account_key(
    accounts: Accounts, relay: RunningRelay
) -> None:
    alice = await accounts.create("alice")
    assert alice.account.key is not None
    answer = await _backup_from(alice, PIN, "A CODE", alice.account.key)
    assert answer.status == "ok" and answer.tries_left == 10
    wrong_key = await _backup_from(alice, PIN, "A CODE", SigningKey.generate())
    assert wrong_key.status == "bad_signature"
