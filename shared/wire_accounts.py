"""Frames of accounts and devices: creating an account and logging in (password or signature),
pre-keys and bundles, the signed device lists, pairing a new device, listing, rejecting and
re-creating (``RebuildAccount``) an account's devices, the password, and the notices the relay
pushes about them. Gathered with the other areas in :mod:`shared.wire`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from shared.device_list import DeviceId, DeviceName, Key32, Signature, Username
from shared.wire_frame import Frame, Ok, Rid
from shared.wire_history import EpochRecord, EpochUpload

__all__ = [
    "ACCOUNTS_REPLIES",
    "MAX_LISTS_BETWEEN",
    "MAX_PASSWORD",
    "MAX_PREKEYS_PER_UPLOAD",
    "MAX_REBUILT_EPOCHS",
    "MIN_PASSWORD",
    "PRE_KEYS_LOW",
    "AddDevice",
    "Bundles",
    "Challenge",
    "ChangePassword",
    "CreateAccount",
    "DeviceListReply",
    "DeviceRegistration",
    "Devices",
    "FetchBundles",
    "FetchDeviceList",
    "ListDevices",
    "NotRegistered",
    "Notice",
    "OfferPairing",
    "PairingPush",
    "PairingSend",
    "Password",
    "PreKeyBundle",
    "PublishDeviceList",
    "PublishKeys",
    "RebuildAccount",
    "RegisteredDevice",
    "RejectDevice",
    "Resume",
    "SignedList",
    "Welcome",
]


MAX_PREKEYS_PER_UPLOAD = 200
# Below this many one-time pre-keys left, a device uploads more: at login (``Welcome`` says how
# many are left) and when the relay pushes a ``prekeys_low`` notice.
PRE_KEYS_LOW = 20
MIN_PASSWORD = 8
MAX_PASSWORD = 256
Password = Annotated[str, msgspec.Meta(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]
SignedList = Annotated[bytes, msgspec.Meta(max_length=40 * 1024)]


class DeviceRegistration(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: DeviceId
    name: DeviceName
    sign_public: Key32
    storage_key: Key32  # X25519: receives epoch grants once the device is a member


class PreKeyBundle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The public X3DH keys of one device, with at most one one-time pre-key."""

    device_id: DeviceId
    identity_key: Key32
    signed_pre_key: Key32
    signed_pre_key_sig: Signature
    one_time_pre_key: Key32 | None


class RegisteredDevice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device the relay knows for the account: a member (on the signed list) or pending, with
    its pairing offer's commitment while the offer is fresh."""

    registration: DeviceRegistration
    identity_key: Key32 | None
    registered_at: int
    last_seen: int
    member: bool
    pairing_commitment: Key32 | None = None
    pairing_at: int | None = None  # when the fresh offer was made (tells two requests apart)


class CreateAccount(Frame, tag="create_account", frozen=True):
    """First device of a new account: password, device key and the account master key."""

    rid: Rid
    username: Username
    password: Password
    device: DeviceRegistration
    amk_public: Key32
    signature: Signature  # over the relay's nonce (shared.auth)


class AddDevice(Frame, tag="add_device", frozen=True):
    """Log in with the password on a new device; it is pending until a signed list names it."""

    rid: Rid
    username: Username
    password: Password
    device: DeviceRegistration
    signature: Signature


class Resume(Frame, tag="resume", frozen=True):
    """Log in as a device the relay already knows, by signature alone."""

    rid: Rid
    username: Username
    device_id: DeviceId
    signature: Signature


class PublishKeys(Frame, tag="publish_keys", frozen=True):
    rid: Rid
    identity_key: Key32
    signed_pre_key: Key32
    signed_pre_key_sig: Signature
    one_time_pre_keys: Annotated[list[Key32], msgspec.Meta(max_length=MAX_PREKEYS_PER_UPLOAD)]


class PublishDeviceList(Frame, tag="publish_device_list", frozen=True):
    """A new device list always comes with the epoch opened for it, stored in one transaction."""

    rid: Rid
    signed_list: SignedList
    epoch: EpochUpload


class FetchDeviceList(Frame, tag="fetch_device_list", frozen=True):
    """The user's current list; with ``since`` (the version the asking device holds) also the
    lists between, so that the asking device can check each change's author in turn."""

    rid: Rid
    username: Username
    since: Annotated[int, msgspec.Meta(ge=0)] | None = None


class FetchBundles(Frame, tag="fetch_bundles", frozen=True):
    rid: Rid
    username: Username
    device_ids: Annotated[list[DeviceId], msgspec.Meta(min_length=1, max_length=64)]


class ListDevices(Frame, tag="list_devices", frozen=True):
    rid: Rid


class OfferPairing(Frame, tag="offer_pairing", frozen=True):
    """A pending device asks to be approved, committing to its pairing nonce (shared.pairing)."""

    rid: Rid
    commitment: Key32


class PairingSend(Frame, tag="pairing_send", frozen=True):
    """A pairing message for another device of the same account (both may be pending)."""

    rid: Rid
    to_device: DeviceId
    payload: Annotated[bytes, msgspec.Meta(max_length=1024)]


class RejectDevice(Frame, tag="reject_device", frozen=True):
    """A member device discards a pending device's registration."""

    rid: Rid
    device_id: DeviceId


class ChangePassword(Frame, tag="change_password", frozen=True):
    """A member device sets the account's new password. Every login made with the old one ends:
    the relay forgets the account's pending devices and closes their connections."""

    rid: Rid
    password: Password


class Challenge(Frame, tag="challenge", frozen=True):
    nonce: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class Welcome(Frame, tag="welcome", frozen=True):
    rid: Rid
    device_id: DeviceId
    one_time_pre_keys_left: int


MAX_LISTS_BETWEEN = 32


class DeviceListReply(Frame, tag="device_list", frozen=True):
    rid: Rid
    signed_list: SignedList | None
    # The lists after the asked ``since`` and before ``signed_list``, oldest first (at most
    # MAX_LISTS_BETWEEN: the asking device asks again from the last one for more).
    between: Annotated[list[SignedList], msgspec.Meta(max_length=MAX_LISTS_BETWEEN)] = (
        msgspec.field(default_factory=list)
    )


class Bundles(Frame, tag="bundles", frozen=True):
    rid: Rid
    bundles: list[PreKeyBundle]


class Devices(Frame, tag="devices", frozen=True):
    rid: Rid
    devices: list[RegisteredDevice]


class PairingPush(Frame, tag="pairing_push", frozen=True):
    from_device: DeviceId
    payload: bytes


MAX_REBUILT_EPOCHS = 512


class RebuildAccount(Frame, tag="rebuild_account", frozen=True):
    """Re-create an account on a relay that lost it, from what a member device holds: its
    current signed device list and the account's epochs, from the first. Only right after the
    account was created again (the relay holds no list and no epoch for it); the relay registers
    the listed devices from the signed list."""

    rid: Rid
    signed_list: SignedList
    epochs: Annotated[list[EpochRecord], msgspec.Meta(max_length=MAX_REBUILT_EPOCHS)]


class NotRegistered(Frame, tag="not_registered", frozen=True):
    """The answer to a ``Resume`` from a device the relay does not know. It was removed, or the
    relay lost its data, or says so: the answer itself proves nothing. ``lists`` are the
    account's newest signed device lists, oldest first; only a list without the device, verified
    under the device-list rules against the lists the device holds, proves a removal."""

    rid: Rid
    lists: Annotated[list[SignedList], msgspec.Meta(max_length=MAX_LISTS_BETWEEN)] = msgspec.field(
        default_factory=list
    )


class Notice(Frame, tag="notice", frozen=True):
    """A push that needs no answer: ``device_list_changed`` (with a username), ``prekeys_low``,
    ``epoch_changed`` (this user's account opened a new epoch)."""

    kind: Literal["device_list_changed", "prekeys_low", "epoch_changed", "pairing_offer"]
    username: Username | None = None
    count: int = 0


# What the relay answers to each of these requests when it takes it (gathered in
# ``shared.wire.REPLIES``).
ACCOUNTS_REPLIES: dict[type[Frame], tuple[type[Frame], ...]] = {
    CreateAccount: (Welcome,),
    AddDevice: (Welcome,),
    Resume: (Welcome, NotRegistered),
    PublishKeys: (Ok,),
    PublishDeviceList: (Ok,),
    FetchDeviceList: (DeviceListReply,),
    FetchBundles: (Bundles,),
    ListDevices: (Devices,),
    OfferPairing: (Ok,),
    PairingSend: (Ok,),
    RejectDevice: (Ok,),
    ChangePassword: (Ok,),
    RebuildAccount: (Ok,),
}
