"""This device's profile: who it is (read once, typed) and its role in its account.

The profile table of :class:`~client.core.storage.ProfileStore` holds one value per key. Nothing
else in the engine names those keys: :class:`Profile` is the identity fixed when the profile was
made, and :class:`ProfileState` the few values that change, each with a typed getter and setter.

A device's role (:class:`DeviceRole`) moves only along :data:`TRANSITIONS`:

    PENDING ──approved──> MEMBER ──opens the account box──> FULL ──removed──> REMOVED
       └────listed while holding the account key (first device, restore)──┘      ^
    MEMBER ─────────────────────────────removed──────────────────────────────────┘

A pending device may already hold the account key (the first device before its first list is
published, a restore before the list naming it is): it is a member only once its account's
verified device list names it.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from client.core.preferences import Preferences, decode_preferences, encode_preferences
from client.core.storage import ProfileStore
from shared.boxes import StorageKey
from shared.identity import SigningKey


class DeviceRole(enum.StrEnum):
    PENDING = "pending"  # registered, not on the account's verified device list
    MEMBER = "member"  # on the list; not (yet) holding the account key
    FULL = "full"  # on the list and holding the account key: approves, removes, recovers
    REMOVED = "removed"  # was on the list and is not any more: reads nothing new

    @property
    def is_member(self) -> bool:
        return self in (DeviceRole.MEMBER, DeviceRole.FULL)


TRANSITIONS: frozenset[tuple[DeviceRole, DeviceRole]] = frozenset(
    {
        (DeviceRole.PENDING, DeviceRole.MEMBER),
        (DeviceRole.PENDING, DeviceRole.FULL),
        (DeviceRole.MEMBER, DeviceRole.FULL),
        (DeviceRole.MEMBER, DeviceRole.REMOVED),
        (DeviceRole.FULL, DeviceRole.REMOVED),
    }
)


class RoleError(Exception):
    """A role change the lifecycle does not allow (a removed device never comes back)."""


def next_role(current: DeviceRole, listed: bool, holds_key: bool) -> DeviceRole:
    """The role a device has after it learnt whether its verified list names it (``listed``)
    and whether it holds the account key. Leaving the list is a removal only for a device that
    was on it; a removed device stays removed."""
    if current is DeviceRole.REMOVED:
        return current
    if not listed:
        return DeviceRole.REMOVED if current.is_member else current
    return DeviceRole.FULL if holds_key else max_role(current, DeviceRole.MEMBER)


def max_role(a: DeviceRole, b: DeviceRole) -> DeviceRole:
    """The further along of two roles (a full member learning its list stays full)."""
    order = list(DeviceRole)
    return a if order.index(a) >= order.index(b) else b


class Registration(enum.StrEnum):
    CREATE = "create"  # the first device of a new account, until the relay accepts it
    ADD = "add"  # a new device of an existing account, until the relay accepts it
    DONE = "done"  # registered: logs in with its signing key


@dataclass(frozen=True)
class Profile:
    """Who this device is: fixed when the profile was made (the relay's address aside, which
    :meth:`ProfileState.set_relay_url` changes and :meth:`read` picks up)."""

    username: str
    device_id: str
    device_name: str
    relay_url: str
    sign_key: SigningKey
    storage_key: StorageKey

    @classmethod
    def read(cls, store: ProfileStore) -> Profile:
        return cls(
            username=_text(store, "username"),
            device_id=_text(store, "device_id"),
            device_name=_text(store, "device_name"),
            relay_url=_text(store, "relay_url"),
            sign_key=SigningKey(_bytes(store, "sign_seed")),
            storage_key=StorageKey(_bytes(store, "storage_seed")),
        )


def write_new_profile(
    store: ProfileStore,
    identity: Profile,
    x3dh_state: str,
    registration: Registration,
    account_key: SigningKey | None,
) -> None:
    """Store a new profile: its identity, its first key state, and (the first device of an
    account) the account key and thread key it makes."""
    values: dict[str, bytes | str | int] = {
        "username": identity.username,
        "device_name": identity.device_name,
        "relay_url": identity.relay_url,
        "device_id": identity.device_id,
        "sign_seed": identity.sign_key.seed,
        "storage_seed": identity.storage_key.private,
        "x3dh_state": x3dh_state,
        "registration": registration.value,
        "keys_published": 0,
        "role": DeviceRole.PENDING.value,
    }
    if account_key is not None:
        values |= {
            "amk_seed": account_key.seed,
            "amk_public": account_key.public,
            "thread_key": os.urandom(32),
        }
    with store.transaction():
        for key, value in values.items():
            store.put(key, value)


class ProfileState:
    """The profile values that change, typed. Writes join the caller's transaction."""

    def __init__(self, store: ProfileStore) -> None:
        self._store = store

    # ---------------------------------------------------------------- the role

    @property
    def role(self) -> DeviceRole:
        stored = self._store.get("role")
        if isinstance(stored, str):
            return DeviceRole(stored)
        # A profile from before roles were stored: the flags it kept instead.
        if self._store.get("removed"):
            return DeviceRole.REMOVED
        if self._store.get("was_member"):
            return DeviceRole.FULL if self.account_key is not None else DeviceRole.MEMBER
        return DeviceRole.PENDING

    def move_to(self, role: DeviceRole) -> bool:
        """Take ``role``; returns whether it changed. Raises :class:`RoleError` for a change
        :data:`TRANSITIONS` does not allow."""
        current = self.role
        if role is current:
            return False
        if (current, role) not in TRANSITIONS:
            raise RoleError(f"a {current} device cannot become {role}")
        with self._store.transaction():
            self._store.put("role", role.value)
        return True

    # ---------------------------------------------------------------- registration and keys

    @property
    def registration(self) -> Registration:
        return Registration(_text(self._store, "registration"))

    def set_registered(self) -> None:
        self._store.put("registration", Registration.DONE.value)

    @property
    def keys_published(self) -> bool:
        return bool(self._store.get("keys_published"))

    def set_keys_published(self) -> None:
        self._store.put("keys_published", 1)

    def set_relay_url(self, url: str) -> None:
        self._store.put("relay_url", url)

    @property
    def x3dh_state(self) -> str:
        return _text(self._store, "x3dh_state")

    def set_x3dh_state(self, state: str) -> None:
        self._store.put("x3dh_state", state)

    # ---------------------------------------------------------------- the account's secrets

    @property
    def account_key(self) -> SigningKey | None:
        seed = self._store.get("amk_seed")
        return SigningKey(seed) if isinstance(seed, bytes) else None

    def set_account_key(self, key: SigningKey) -> None:
        self._store.put("amk_seed", key.seed)
        self._store.put("amk_public", key.public)

    @property
    def pinned_account_public(self) -> bytes | None:
        """The account key this device trusts by its own knowledge (its own key, a confirmed
        pairing code's, a recovery code's), not by what the relay showed."""
        value = self._store.get("amk_public")
        return value if isinstance(value, bytes) else None

    def pin_account_public(self, public: bytes) -> None:
        self._store.put("amk_public", public)

    @property
    def thread_key(self) -> bytes | None:
        value = self._store.get("thread_key")
        return value if isinstance(value, bytes) else None

    def set_thread_key(self, key: bytes) -> None:
        self._store.put("thread_key", key)

    @property
    def vault_public(self) -> bytes | None:
        value = self._store.get("vault_public")
        return value if isinstance(value, bytes) else None

    def pin_vault_public(self, public: bytes) -> None:
        self._store.put("vault_public", public)

    @property
    def approvers(self) -> frozenset[str] | None:
        """The devices whose pairing codes this new device confirmed (None once a recovery
        code, not a pairing, made it a member, or before any pairing)."""
        value = self._store.get("approvers")
        return frozenset(value.split()) if isinstance(value, str) else None

    def add_approver(self, device_id: str) -> None:
        approvers = (self.approvers or frozenset()) | {device_id}
        self._store.put("approvers", " ".join(sorted(approvers)))

    def forget_approvers(self) -> None:
        self._store.put("approvers", None)

    # ---------------------------------------------------------------- counters

    def next_send_counter(self) -> int:
        """This device's next payload number (committed with the payload's outbox entry)."""
        counter = int(self._store.get("send_counter") or 0) + 1
        self._store.put("send_counter", counter)
        return counter

    @property
    def codes_made(self) -> int:
        return int(self._store.get("codes_made") or 0)

    def count_code_made(self) -> None:
        self._store.put("codes_made", self.codes_made + 1)

    # ---------------------------------------------------------------- the user's choices

    @property
    def preferences(self) -> Preferences:
        value = self._store.get("preferences")
        return decode_preferences(value if isinstance(value, bytes) else None)

    def set_preferences(self, preferences: Preferences) -> None:
        self._store.put("preferences", encode_preferences(preferences))


def _text(store: ProfileStore, key: str) -> str:
    value = store.get(key)
    if not isinstance(value, str):
        raise ValueError(f"the profile has no {key}")
    return value


def _bytes(store: ProfileStore, key: str) -> bytes:
    value = store.get(key)
    if not isinstance(value, bytes):
        raise ValueError(f"the profile has no {key}")
    return value
