"""Vault handlers: the PIN vault's public key, and sealed calls passed through to the vault.

The vault cannot see who is a member; the relay tells it (a pending device may ask for the
recovery code with the PIN, only a member may back up), and the vault also checks the account
key's signature on a backup. Calls are rate-limited per account across connections.
"""

from __future__ import annotations

from relay.session import Handler, Reject, Session
from shared import wire
from shared.wire import ErrorCode


async def fetch_vault_key(session: Session, frame: wire.FetchVaultKey) -> wire.Frame:
    vault = session.relay.vault
    if vault is None:
        raise Reject(ErrorCode.NO_VAULT, "this relay runs without a PIN vault")
    return wire.VaultKey(rid=frame.rid, public=vault.public_key)


async def vault_call(session: Session, frame: wire.VaultCall) -> wire.Frame:
    vault = session.relay.vault
    if vault is None:
        raise Reject(ErrorCode.NO_VAULT, "this relay runs without a PIN vault")
    if not session.shared.vault_calls.take(session.username):
        raise Reject(ErrorCode.RATE_LIMITED, "too many vault requests")
    answer = vault.handle(
        session.username,
        frame.sealed,
        member=session.is_member,
        amk_public=session.store.amk_public(session.username),
    )
    if answer is None:
        raise Reject(ErrorCode.VAULT_REFUSED, "the vault could not open the request")
    return wire.VaultReply(rid=frame.rid, sealed=answer)


HANDLERS: dict[type, Handler] = {
    wire.FetchVaultKey: fetch_vault_key,
    wire.VaultCall: vault_call,
}
