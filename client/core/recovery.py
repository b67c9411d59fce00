"""Recovery: the recovery code, the PIN, and restoring on a new device (Labyrinth §"Recovery
codes", §"Virtual devices", §"Adding a device"; PROTOCOL.md §6).

- :func:`back_up_pin` seals the recovery code, wrapped under the stretched PIN, to the vault.
- :func:`code_from_vault` asks the vault for it with a PIN.
- :func:`recover` turns a recovery code into what makes a device a member: the account secrets
  (AMK seed, thread key), the verified epoch chain and the newest root. The code's virtual device
  proves its membership to the relay to get its grant; its endorsement in the signed head proves
  the AMK is the account's; the chain is verified from the first epoch to the newest device list.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from client.core.port import RelayError, RelayPort
from client.core.profile import ProfileState
from client.core.storage import ProfileStore
from shared import wire
from shared.epoch import (
    AccountSecrets,
    claimed_amk,
    open_account_secrets,
    open_grant,
    verify_chain,
)
from shared.errors import ProtocolError, VerificationError
from shared.identity import SigningKey
from shared.pin import NoBackup, VaultLocked, WrongPin, backup_request, recover_request, stretch
from shared.recovery_code import InvalidRecoveryCode, VirtualDevice, candidates, virtual_device


class WrongRecoveryCode(ProtocolError):
    """The code is well formed but is not one of this account's recovery codes."""


@dataclass(frozen=True)
class Recovered:
    secrets: AccountSecrets
    epochs: list[wire.EpochData]
    root: bytes
    virtual: VirtualDevice


async def _vault_key(link: RelayPort, store: ProfileStore) -> bytes:
    """The vault's key, pinned on first use (a real deployment ships it in the app)."""
    answer = await link.request(lambda rid: wire.FetchVaultKey(rid=rid), expect=wire.VaultKey)
    state = ProfileState(store)
    pinned = state.vault_public
    if pinned is not None and pinned != answer.public:
        raise VerificationError("the relay presents a different vault key than before")
    if pinned is None:
        with store.transaction():
            state.pin_vault_public(answer.public)
    return answer.public


async def _call_vault(link: RelayPort, sealed: bytes) -> bytes:
    answer = await link.request(
        lambda rid: wire.VaultCall(rid=rid, sealed=sealed), expect=wire.VaultReply
    )
    return answer.sealed


async def back_up_pin(
    link: RelayPort, store: ProfileStore, username: str, pin: str, code: str, amk: SigningKey
) -> int:
    """Give the vault the code, wrapped under the PIN and signed with the account key. Returns
    the tries left (a re-backup keeps the count of wrong guesses)."""
    vault_public = await _vault_key(link, store)
    stretched = await asyncio.to_thread(stretch, pin, username)
    request = backup_request(vault_public, username, stretched, code, amk)
    answer = request.open_answer(await _call_vault(link, request.sealed))
    if answer.status == "locked":
        raise VaultLocked("the vault locked this account's PIN after too many wrong guesses")
    if answer.status != "ok":
        raise ProtocolError(f"the vault refused the backup: {answer.status}")
    return answer.tries_left


async def code_from_vault(link: RelayPort, store: ProfileStore, username: str, pin: str) -> str:
    vault_public = await _vault_key(link, store)
    stretched = await asyncio.to_thread(stretch, pin, username)
    request = recover_request(vault_public, username, stretched)
    answer = request.open_answer(await _call_vault(link, request.sealed))
    if answer.status == "wrong_pin":
        raise WrongPin(answer.tries_left)
    if answer.status == "locked":
        raise VaultLocked("too many wrong PINs: the vault deleted the backup")
    if answer.status == "no_backup":
        raise NoBackup("there is no PIN backup for this account")
    if answer.status != "ok" or answer.wrapped is None:
        raise ProtocolError(f"the vault answered {answer.status}")
    return request.unwrap(answer.wrapped)


async def recover(link: RelayPort, username: str, device_id: str, code_text: str) -> Recovered:
    """Open the account's newest epoch with a recovery code (trying the corrections of a
    mistyped code until one is a member). Raises :class:`InvalidRecoveryCode` or
    :class:`WrongRecoveryCode`, or :class:`VerificationError` if the relay's data is forged."""
    for code in candidates(code_text):
        virtual = virtual_device(code)

        def fetch(rid: int, v: VirtualDevice = virtual) -> wire.FetchEpochs:
            return wire.FetchEpochs(
                rid=rid,
                since=0,
                member_id=v.member_id,
                proof=v.membership_proof(username, device_id),
            )

        try:
            answer = await link.request(fetch, expect=wire.Epochs)
        except RelayError as exc:
            if exc.code == wire.ErrorCode.NOT_A_MEMBER:
                continue
            raise
        if not answer.epochs:
            continue
        newest = answer.epochs[-1]
        if newest.grant is None:
            continue
        # Verified under the key the heads name, which is trusted only once the code's
        # endorsement of it checks out just below.
        chain = verify_chain(
            [e.signed_head for e in answer.epochs],
            username,
            claimed_amk(newest.signed_head),
            known=None,
            device_list_hash=None,
        )
        claimed = chain[-1]
        before = chain[-2] if len(chain) > 1 else None
        member = claimed.member(virtual.member_id)
        if member is None or member.endorsement is None:
            continue
        if not virtual.endorses(claimed.amk_public, member.endorsement):
            raise VerificationError("the account key is not the one this recovery code endorsed")
        root = open_grant(newest.grant, virtual.storage, claimed, virtual.member_id, None, before)
        secrets = open_account_secrets(root, claimed, newest.account_box)
        return Recovered(secrets, answer.epochs, root, virtual)
    raise WrongRecoveryCode("this recovery code does not belong to this account")


__all__ = [
    "InvalidRecoveryCode",
    "NoBackup",
    "Recovered",
    "VaultLocked",
    "WrongPin",
    "WrongRecoveryCode",
    "back_up_pin",
    "code_from_vault",
    "recover",
]
