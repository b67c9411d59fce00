"""Epochs (Labyrinth §3 "Epochs" and "Opening an epoch"), with AMK-signed epoch heads.

An epoch has a 32-byte **root key** known only to its member devices. Opening epoch *n*:

- fresh 32-byte **entropy**; ``root_n = HKDF(salt=root_{n-1}, ikm=entropy, info=user ‖ n)``
  (epoch 1 has no previous root);
- a **grant** per member, HPKE-sealed to the member's epoch-storage key, bound to the head: a
  member that held ``root_{n-1}`` gets the entropy only, a member new to the epoch (a device just
  added, or a virtual device, which keeps nothing between epochs) gets ``root_{n-1}`` too;
- the **previous root box**: ``root_{n-1}`` sealed under a key derived from ``root_n``, so a device
  holding the newest root can walk back through all history;
- the **account box**: the account secrets (the AMK seed and the key that names threads) sealed
  under ``root_n``, so a device that becomes a member also becomes a full device.

Beyond the white paper (closing its "epoch integrity" and "membership enumeration" limits), each
epoch has a **head** ``{user, seq, prev_head_hash, device_list_hash, members, root_commitment}``
signed by the AMK. The head is each member's **membership proof**: the relay serves a grant only
to a member the signed head names, and a device accepts a root only if it matches the head's
commitment, so neither the relay nor anyone without the AMK can open an epoch, hide a member, or
hand out a root of its own. Heads chain by hash and must name the newest device list, so a relay
cannot truncate the chain or roll it back without devices noticing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Annotated

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.boxes import StorageKey, derive, open_box, seal, seal_to
from shared.codec import decode_strict
from shared.device_list import DeviceId, Key32, Signature, Username
from shared.errors import DecryptionError, VerificationError, WireError
from shared.identity import SigningKey, verify

_HEAD_DOMAIN = b"ariadne/epoch-head/v1"
MAX_MEMBERS = 80


class EpochMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device, or a virtual device (a recovery code), that receives the epoch's entropy.

    A virtual member also names its signing key and its endorsement of the AMK (its signature
    over the AMK public key): whoever holds the code can check that the account key it recovers
    is the one the code was made for."""

    member_id: DeviceId
    storage_key: Key32
    virtual: bool = False
    sign_public: Key32 | None = None
    endorsement: Signature | None = None


class EpochHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    seq: Annotated[int, msgspec.Meta(ge=1)]
    prev_head_hash: bytes  # empty for the first epoch
    amk_public: Key32
    device_list_hash: Key32  # the device list this epoch was opened for
    members: Annotated[tuple[EpochMember, ...], msgspec.Meta(min_length=1, max_length=MAX_MEMBERS)]
    root_commitment: Key32
    v: int = 1

    def member(self, member_id: str) -> EpochMember | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    @property
    def virtual_members(self) -> tuple[EpochMember, ...]:
        return tuple(m for m in self.members if m.virtual)


class SignedHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: Annotated[bytes, msgspec.Meta(max_length=16 * 1024)]
    signature: Signature


class GrantContents(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a member's sealed grant holds."""

    entropy: Key32
    prev_root: Key32 | None = None


class AccountSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amk_seed: Key32
    thread_key: Key32  # names threads in the mailbox (shared.mailbox.thread_id)


@dataclass(frozen=True)
class OpenedEpoch:
    """Everything a device uploads to open an epoch, and the root it keeps."""

    seq: int
    signed_head: bytes
    head: EpochHead
    root: bytes
    prev_root_box: bytes
    account_box: bytes
    grants: dict[str, bytes]  # member_id -> sealed grant


_encoder = msgspec.msgpack.Encoder()
_head_decoder = msgspec.msgpack.Decoder(EpochHead)
_signed_decoder = msgspec.msgpack.Decoder(SignedHead)
_grant_decoder = msgspec.msgpack.Decoder(GrantContents)
_secrets_decoder = msgspec.msgpack.Decoder(AccountSecrets)


def head_hash(signed_head: bytes) -> bytes:
    return hashlib.sha256(b"ariadne/epoch-head-hash/v1\x00" + signed_head).digest()


def _context(username: str, seq: int) -> bytes:
    return username.encode() + b"\x00" + seq.to_bytes(8, "big")


def derive_root(prev_root: bytes | None, entropy: bytes, username: str, seq: int) -> bytes:
    info = b"ariadne/epoch-root/v1\x00" + _context(username, seq)
    return HKDF(hashes.SHA256(), 32, prev_root, info).derive(entropy)


def root_commitment(root: bytes, username: str, seq: int) -> bytes:
    return hmac.digest(
        root, b"ariadne/epoch-root-commitment/v1\x00" + _context(username, seq), "sha256"
    )


def grant_context(username: str, seq: int, member: EpochMember) -> bytes:
    return (
        b"ariadne/epoch-grant/v1\x00"
        + _context(username, seq)
        + member.member_id.encode()
        + member.storage_key
    )


def open_epoch(
    amk: SigningKey,
    username: str,
    *,
    previous: tuple[EpochHead, bytes, bytes] | None,
    members: list[EpochMember],
    device_list_hash: bytes,
    secrets: AccountSecrets,
) -> OpenedEpoch:
    """Open the next epoch. ``previous`` is ``(head, signed_head, root)`` of the current epoch
    (None for the first). Members of the previous epoch get the entropy; new members and virtual
    devices also get the previous root."""
    seq = previous[0].seq + 1 if previous else 1
    prev_root = previous[2] if previous else None
    before = {m.member_id for m in previous[0].members if not m.virtual} if previous else set()
    entropy = os.urandom(32)
    root = derive_root(prev_root, entropy, username, seq)
    head = EpochHead(
        username=username,
        seq=seq,
        prev_head_hash=head_hash(previous[1]) if previous else b"",
        amk_public=amk.public,
        device_list_hash=device_list_hash,
        members=tuple(members),
        root_commitment=root_commitment(root, username, seq),
    )
    body = _encoder.encode(head)
    signed = _encoder.encode(SignedHead(body=body, signature=amk.sign(_HEAD_DOMAIN, body)))
    grants = {}
    for member in members:
        carry = prev_root if member.member_id not in before else None
        grant = _encoder.encode(GrantContents(entropy=entropy, prev_root=carry))
        grants[member.member_id] = seal_to(
            member.storage_key, grant, grant_context(username, seq, member)
        )
    ctx = _context(username, seq)
    prev_root_box = (
        seal(derive(root, b"ariadne/previous-root/v1", ctx), prev_root, ctx) if prev_root else b""
    )
    account_box = seal(
        derive(root, b"ariadne/account-secrets/v1", ctx), _encoder.encode(secrets), ctx
    )
    return OpenedEpoch(seq, signed, head, root, prev_root_box, account_box, grants)


def claimed_amk(signed: bytes) -> bytes:
    """The AMK a head *names*, unverified: for a device that does not know its account key yet
    and must check it some other way (a recovery code's endorsement) before trusting it."""
    return _decode_head(signed)[1].amk_public


def _decode_head(signed: bytes) -> tuple[SignedHead, EpochHead]:
    outer = decode_strict(_signed_decoder, signed, "epoch head")
    return outer, decode_strict(_head_decoder, outer.body, "epoch head")


def open_head(signed: bytes, username: str, amk_public: bytes) -> EpochHead:
    """Decode a signed head and check it is ``username``'s, signed by ``amk_public``."""
    outer, head = _decode_head(signed)
    if head.v != 1:
        raise WireError(f"unsupported epoch head version {head.v}")
    if head.username != username:
        raise VerificationError("epoch head is for another user")
    if head.amk_public != amk_public or not verify(
        amk_public, outer.signature, _HEAD_DOMAIN, outer.body
    ):
        raise VerificationError("epoch head is not signed by the account key")
    if (head.seq == 1) != (head.prev_head_hash == b""):
        raise VerificationError("epoch chain start is inconsistent")
    ids = [m.member_id for m in head.members]
    if len(set(ids)) != len(ids):
        raise VerificationError("epoch head repeats a member")
    return head


def verify_chain(
    signed_heads: list[bytes],
    username: str,
    amk_public: bytes,
    *,
    known: tuple[int, bytes] | None,
    device_list_hash: bytes | None,
) -> list[EpochHead]:
    """Verify heads that continue the chain after ``known`` = ``(seq, hash)`` (the newest head
    this device already trusts; None to verify from the first epoch).

    Refuses a broken or forked chain, a rollback (nothing newer than ``known`` is fine, older is
    not), and a chain whose newest head does not name ``device_list_hash``, the newest device list
    this device holds: the relay hid the newest epoch."""
    heads = [open_head(s, username, amk_public) for s in signed_heads]
    seq, prev = known if known else (0, b"")
    for signed, head in zip(signed_heads, heads, strict=True):
        if head.seq != seq + 1:
            raise VerificationError(f"epoch chain skips or repeats: {seq} then {head.seq}")
        if head.prev_head_hash != prev:
            raise VerificationError("epoch chain is broken or forked")
        seq, prev = head.seq, head_hash(signed)
    if known is None and not heads:
        raise VerificationError("the account has no epochs")
    newest_list = heads[-1].device_list_hash if heads else None
    if device_list_hash is not None and heads and newest_list != device_list_hash:
        raise VerificationError("the newest epoch is not the one for the newest device list")
    return heads


def open_grant(
    sealed: bytes,
    key: StorageKey,
    head: EpochHead,
    member_id: str,
    prev_root: bytes | None,
    prev_head: EpochHead | None = None,
) -> bytes:
    """Open a member's grant and return the epoch's root, checked against the signed head.

    ``prev_root`` is the previous epoch's root if this device holds it (a continuing member):
    a grant that names another one is refused, since whoever signed the head could otherwise
    choose the root's ancestry. A previous root the grant brings (a new member) is checked
    against ``prev_head``'s commitment when the caller has that head."""
    member = head.member(member_id)
    if member is None or member.storage_key != key.public:
        raise VerificationError("not a member of this epoch")
    opened = key.open(sealed, grant_context(head.username, head.seq, member))
    grant = decode_strict(_grant_decoder, opened, "grant", DecryptionError)
    if head.seq > 1:
        if grant.prev_root is not None and prev_root is not None:
            if not hmac.compare_digest(grant.prev_root, prev_root):
                raise VerificationError(
                    "the grant gives another previous root than the one this device holds"
                )
        elif grant.prev_root is not None and prev_head is not None:
            expected = root_commitment(grant.prev_root, prev_head.username, prev_head.seq)
            if not hmac.compare_digest(expected, prev_head.root_commitment):
                raise VerificationError("the grant's previous root is not the previous epoch's")
        prev_root = prev_root or grant.prev_root
        if prev_root is None:
            raise DecryptionError("the grant needs the previous root, which this device lacks")
    else:
        prev_root = None
    root = derive_root(prev_root, grant.entropy, head.username, head.seq)
    if not hmac.compare_digest(
        root_commitment(root, head.username, head.seq), head.root_commitment
    ):
        raise VerificationError("the grant does not give the root the signed head commits to")
    return root


def previous_root(
    root: bytes, head: EpochHead, prev_head: EpochHead, prev_root_box: bytes
) -> bytes:
    """Walk back one epoch: open ``head``'s previous-root box and check it against the previous
    head's commitment."""
    ctx = _context(head.username, head.seq)
    prev = open_box(derive(root, b"ariadne/previous-root/v1", ctx), prev_root_box, ctx)
    expected = root_commitment(prev, prev_head.username, prev_head.seq)
    if len(prev) != 32 or not hmac.compare_digest(expected, prev_head.root_commitment):
        raise VerificationError("previous-root box does not match the previous epoch")
    return prev


def open_account_secrets(root: bytes, head: EpochHead, account_box: bytes) -> AccountSecrets:
    ctx = _context(head.username, head.seq)
    data = open_box(derive(root, b"ariadne/account-secrets/v1", ctx), account_box, ctx)
    secrets = decode_strict(_secrets_decoder, data, "account secrets", DecryptionError)
    if SigningKey(secrets.amk_seed).public != head.amk_public:
        raise VerificationError("account secrets hold a different account key")
    return secrets
