"""Making a profile and logging in with it: the first frame each connection sends.

A new profile holds a fresh signing key, storage key and X3DH keys (and, for the first device of
an account, the account key and thread key). Until the relay accepted its registration the
device registers (``CreateAccount`` or ``AddDevice``, with the password, which is kept in memory
only until then); afterwards it resumes with a signature over the relay's challenge.
"""

from __future__ import annotations

from pathlib import Path

from client.core.profile import Profile, ProfileState, Registration, write_new_profile
from client.core.storage import ProfileStore
from shared import wire
from shared.auth import sign_login
from shared.boxes import StorageKey
from shared.identity import SigningKey, device_id_for
from shared.session import dump_x3dh_state, new_x3dh_state

PRE_KEY_BATCH = 100


class RegistrationError(Exception):
    """Creating an account or adding a device was refused (``code`` says why; a throttled login
    says in ``retry_after`` how many seconds to wait)."""

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.retry_after = retry_after


def new_profile(
    profile_dir: Path,
    relay_url: str,
    username: str,
    device_name: str,
    registration: Registration | str,
    with_amk: bool,
    encrypt: bool = True,
) -> ProfileStore:
    """Make a profile in ``profile_dir`` (which must not hold one) and return its store."""
    if ProfileStore.exists(profile_dir):
        raise FileExistsError(f"a profile already exists in {profile_dir}")
    store = ProfileStore(profile_dir, encrypt=encrypt)
    sign_key = SigningKey.generate()
    x3dh = new_x3dh_state()
    x3dh.generate_pre_keys(PRE_KEY_BATCH)
    identity = Profile(
        username=username,
        device_id=device_id_for(sign_key.public),
        device_name=device_name,
        relay_url=relay_url,
        sign_key=sign_key,
        storage_key=StorageKey.generate(),
    )
    account_key = SigningKey.generate() if with_amk else None
    write_new_profile(
        store, identity, dump_x3dh_state(x3dh), Registration(registration), account_key
    )
    return store


class Login:
    def __init__(self, profile: Profile, store: ProfileStore, password: str | None) -> None:
        self._profile = profile
        self._store = store
        self._state = ProfileState(store)
        self._password = password  # only until the relay accepted the registration
        self._recreating = False  # creating the account again on a relay that lost it

    def frame(self, nonce: bytes, rid: int) -> wire.Frame:
        """The login frame for the relay's challenge ``nonce``."""
        profile = self._profile
        signature = sign_login(profile.sign_key, nonce, profile.username, profile.device_id)
        registration = self._state.registration
        if self._recreating:
            registration = Registration.CREATE
        if registration is Registration.DONE:
            return wire.Resume(
                rid=rid,
                username=profile.username,
                device_id=profile.device_id,
                signature=signature,
            )
        if self._password is None:
            raise RegistrationError("unfinished", "registration was interrupted; start again")
        device = wire.DeviceRegistration(
            device_id=profile.device_id,
            name=profile.device_name,
            sign_public=profile.sign_key.public,
            storage_key=profile.storage_key.public,
        )
        if registration is Registration.CREATE:
            amk = self._state.account_key
            if amk is None:
                raise RegistrationError("unfinished", "this profile has no account key to create")
            return wire.CreateAccount(
                rid=rid,
                username=profile.username,
                password=self._password,
                device=device,
                amk_public=amk.public,
                signature=signature,
            )
        return wire.AddDevice(
            rid=rid,
            username=profile.username,
            password=self._password,
            device=device,
            signature=signature,
        )

    def recreate(self, password: str) -> None:
        """Log in next by creating the account again, with this device's own keys and the
        account's key (the relay lost it); the password is kept in memory until then."""
        self._password, self._recreating = password, True

    @property
    def recreating(self) -> bool:
        return self._recreating

    def accepted(self) -> None:
        """The relay accepted this device: it resumes from now on, and forgets the password."""
        if self._state.registration is not Registration.DONE:
            with self._store.transaction():
                self._state.set_registered()
        self._password, self._recreating = None, False
