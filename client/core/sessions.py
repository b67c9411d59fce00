"""This device's Double Ratchet sessions with every peer device (Sesame-style).

A peer device may have more than one session with us: if both sides start one at the same time,
each side keeps both and decrypts with whichever matches; the one that last decrypted becomes the
one we send with. Sessions live in memory once loaded and are written to the profile store in the
caller's transaction. One lock per peer device: the ratchet libraries are not safe under
concurrent use.

A peer is a (user, device) pair, never a device id alone: the user is bound into the session when
it starts, and a session is only ever found again under the same pair, so a relay that labels an
envelope with another user's name finds no session to decrypt it with.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

from client.core.profile import ProfileState
from client.core.storage import ProfileStore
from shared.device_list import DeviceEntry
from shared.envelope import SealedEnvelope
from shared.errors import DecryptionError, DuplicateMessage
from shared.session import (
    Session,
    X3DHState,
    accept_session,
    dump_x3dh_state,
    initiate_session,
    session_binding,
)
from shared.wire import PreKeyBundle

KEEP_SESSIONS_PER_DEVICE = 4

Peer = tuple[str, str]  # (user, device id)


@dataclass
class _Held:
    id: int
    session: Session
    ephemeral: bytes | None  # X3DH ephemeral key of a session a peer started, to spot resends


class SessionBook:
    def __init__(self, store: ProfileStore, x3dh: X3DHState, me: tuple[str, str]) -> None:
        self._store = store
        self._x3dh = x3dh
        self._me = me
        self._held: dict[Peer, list[_Held]] = {}
        self.locks: defaultdict[Peer, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _sessions(self, peer: Peer) -> list[_Held]:
        if peer not in self._held:
            self._held[peer] = [
                _Held(row.id, Session.load(row.state), row.ephemeral)
                for row in self._store.sessions_with(*peer)
            ]
        return self._held[peer]

    def has_session(self, peer: Peer) -> bool:
        return bool(self._sessions(peer))

    def forget(self, peer: Peer) -> None:
        self._held.pop(peer, None)
        self._store.forget_device_sessions(*peer)

    def _save(self, held: _Held) -> None:
        self._store.update_session(held.id, held.session.dump(), time.time_ns())

    def _add(
        self, peer_user: str, peer_device: str, session: Session, ephemeral: bytes | None
    ) -> None:
        held = _Held(
            self._store.insert_session(
                peer_user, peer_device, ephemeral, session.dump(), time.time_ns()
            ),
            session,
            ephemeral,
        )
        sessions = self._sessions((peer_user, peer_device))
        sessions.insert(0, held)
        if len(sessions) > KEEP_SESSIONS_PER_DEVICE:
            self._store.delete_sessions(h.id for h in sessions[KEEP_SESSIONS_PER_DEVICE:])
            del sessions[KEEP_SESSIONS_PER_DEVICE:]

    async def encrypt(self, peer: Peer, plaintext: bytes) -> SealedEnvelope:
        """Encrypt with the active session (the caller checked :meth:`has_session`)."""
        held = self._sessions(peer)[0]
        sealed = await held.session.encrypt(plaintext)
        self._save(held)
        return sealed

    async def start(
        self, peer_user: str, peer: DeviceEntry, bundle: PreKeyBundle, plaintext: bytes
    ) -> SealedEnvelope:
        """Start a session from a bundle whose identity key matches the peer's signed list entry."""
        if bundle.identity_key != peer.identity_key:
            raise DecryptionError("pre-key bundle does not match the signed device list")
        session, sealed = await initiate_session(
            self._x3dh,
            bundle.identity_key,
            bundle.signed_pre_key,
            bundle.signed_pre_key_sig,
            bundle.one_time_pre_key,
            session_binding(self._me, (peer_user, peer.device_id)),
            plaintext,
        )
        self._add(peer_user, peer.device_id, session, None)
        return sealed

    async def decrypt(self, peer_user: str, peer: DeviceEntry, sealed: SealedEnvelope) -> bytes:
        """Decrypt an envelope from ``peer`` (an entry of the sender's verified device list).

        Raises :class:`DuplicateMessage` for a message already decrypted, and
        :class:`DecryptionError` for anything that does not authenticate."""
        sessions = self._sessions((peer_user, peer.device_id))
        header = sealed.x3dh
        if header is not None:
            if header.identity_key != peer.identity_key:
                raise DecryptionError("session start from a key not on the sender's device list")
            resent = next((h for h in sessions if h.ephemeral == header.ephemeral_key), None)
            if resent is None:
                return await self._accept(peer_user, peer, sealed)
            candidates = [resent]
        else:
            candidates = list(sessions)
        duplicate = False
        for held in candidates:
            try:
                plaintext = await held.session.decrypt(sealed)
            except DuplicateMessage:
                duplicate = True
                continue
            except DecryptionError:
                continue
            self._save(held)
            sessions.remove(held)
            sessions.insert(0, held)  # the session the peer uses is the one to answer with
            return plaintext
        if duplicate:
            raise DuplicateMessage("already decrypted")
        raise DecryptionError("no session decrypts this message")

    async def _accept(self, peer_user: str, peer: DeviceEntry, sealed: SealedEnvelope) -> bytes:
        assert sealed.x3dh is not None
        session, plaintext = await accept_session(
            self._x3dh, sealed, session_binding((peer_user, peer.device_id), self._me)
        )
        self._add(peer_user, peer.device_id, session, sealed.x3dh.ephemeral_key)
        # Only now, with the first message authenticated, is the one-time pre-key used up.
        if sealed.x3dh.one_time_pre_key is not None:
            self._x3dh.delete_pre_key(sealed.x3dh.one_time_pre_key)
            ProfileState(self._store).set_x3dh_state(dump_x3dh_state(self._x3dh))
        return plaintext
