"""A vault entry locked by wrong PINs stays locked, and says so: its secret was destroyed, and a
member's later backup must not be answered "ok" (the device would show a PIN backup that cannot
recover anything, since recovery of a locked entry is refused). A real vault on disk."""

from __future__ import annotations

import os
from pathlib import Path

from relay.vault import Vault
from shared.pin import GUESS_LIMIT, StretchedPin, backup_request, recover_request


def _status(vault: Vault, request, member: bool, amk_public: bytes) -> str:  # type: ignore[no-untyped-def]
    sealed = vault.handle("alice", request.sealed, member=member, amk_public=amk_public)
    assert sealed is not None
    return str(request.open_answer(sealed).status)


async def test_a_locked_entry_refuses_a_new_backup_and_stays_locked(kit, tmp_path: Path):
    await kit.create("alice")
    amk = kit.accounts["alice"].amk
    vault = Vault(tmp_path / "vault")
    try:
        pin = StretchedPin(os.urandom(32), os.urandom(32))
        wrong = StretchedPin(os.urandom(32), os.urandom(32))
        backup = backup_request(vault.public_key, "alice", pin, "the code", amk)
        assert _status(vault, backup, True, amk.public) == "ok"
        answers = [
            _status(vault, recover_request(vault.public_key, "alice", wrong), False, amk.public)
            for _ in range(GUESS_LIMIT)
        ]
        assert answers[-1] == "locked" and set(answers[:-1]) == {"wrong_pin"}
        again = backup_request(vault.public_key, "alice", pin, "a new code", amk)
        assert _status(vault, again, True, amk.public) == "locked"
        recover = recover_request(vault.public_key, "alice", pin)
        assert _status(vault, recover, False, amk.public) == "locked"
    finally:
        vault.close()
