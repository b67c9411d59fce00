"""Checks in the shared protocol code that no other test would notice if they were removed: each
test here fails when its check is taken out."""

from __future__ import annotations

import msgspec
import pytest

from shared.device_list import (
    DeviceEntry,
    first_device_list,
    open_device_list,
    sign_device_list,
)
from shared.errors import WireError
from shared.identity import SigningKey, device_id_for


def test_a_device_list_of_a_format_version_this_code_does_not_know_is_refused():
    """A list signed under a later format (v3) may mean something this code cannot check (new
    fields, new author rules): it is refused, not read as if it were v2."""
    amk, desktop = SigningKey.generate(), SigningKey.generate()
    first = DeviceEntry(
        device_id=device_id_for(desktop.public),
        name="Desktop",
        sign_public=desktop.public,
        identity_key=bytes(32),
        storage_key=bytes(32),
        added_at=1,
    )
    v1 = first_device_list(amk, "alice", first, desktop)
    body = open_device_list(v1, "alice", amk.public)
    later = sign_device_list(amk, desktop, msgspec.structs.replace(body, v=3))
    with pytest.raises(WireError, match="unsupported device list version 3"):
        open_device_list(later, "alice", amk.public)
