"""Vault handlers against a real store and a real vault, without websockets: the relay tells the
vault who is a member and which account key to check, and limits calls per account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relay.limits import Limits
from relay.vault import Vault
from shared import wire
from shared.pin import StretchedPin, backup_request, recover_request


@pytest.fixture
def vault(kit, tmp_path: Path):  # type: ignore[no-untyped-def]
    kit.relay.vault = Vault(tmp_path / "vault")
    yield kit.relay.vault
    kit.relay.vault.close()


PIN = StretchedPin(os.urandom(32), os.urandom(32))  # as stretched from a PIN (Argon2id skipped)


async def _answer(kit, device, request) -> str:  # type: ignore[no-untyped-def]
    reply = await kit.call(device, wire.VaultCall(rid=1, sealed=request.sealed))
    return request.open_answer(reply.sealed).status


async def test_only_a_member_backs_up_and_a_pending_device_recovers_with_the_pin(kit, vault):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    key = await kit.call(laptop, wire.FetchVaultKey(rid=1))
    assert key.public == vault.public_key
    amk = kit.accounts["alice"].amk
    backup = backup_request(vault.public_key, "alice", PIN, "the recovery code", amk)
    assert await _answer(kit, laptop, backup) == "not_a_member"
    assert (
        await _answer(kit, alice, backup_request(vault.public_key, "alice", PIN, "x", amk)) == "ok"
    )
    recover = recover_request(vault.public_key, "alice", PIN)
    reply = await kit.call(laptop, wire.VaultCall(rid=1, sealed=recover.sealed))
    assert recover.unwrap(recover.open_answer(reply.sealed).wrapped) == "x"


async def test_a_backup_must_be_signed_by_the_key_the_relay_holds(kit, vault):
    alice = await kit.create("alice")
    await kit.create("mallory")
    forged = backup_request(vault.public_key, "alice", PIN, "x", kit.accounts["mallory"].amk)
    assert await _answer(kit, alice, forged) == "bad_signature"


async def test_an_unreadable_request_is_refused(kit, vault):
    alice = await kit.create("alice")
    assert await kit.refused(alice, wire.VaultCall(rid=1, sealed=b"not sealed")) == "vault_refused"


async def test_without_a_vault_the_calls_say_so(kit):
    alice = await kit.create("alice")
    assert await kit.refused(alice, wire.FetchVaultKey(rid=1)) == "no_vault"
    assert await kit.refused(alice, wire.VaultCall(rid=1, sealed=b"x")) == "no_vault"


@pytest.mark.parametrize("limits", [Limits(vault_call_burst=2, vault_calls_per_second=0.001)])
async def test_vault_calls_are_limited_per_account(kit, vault):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    call = wire.VaultCall(rid=1, sealed=b"not sealed")
    assert await kit.refused(alice, call) == "vault_refused"
    assert await kit.refused(laptop, call) == "vault_refused"
    assert await kit.refused(alice, call) == "rate_limited"  # the account's, not the device's
