"""One process per profile: a second opener is refused with a sentence naming the first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from client.core.at_rest import ProfileLocked
from client.core.profile_lock import ProfileInUse
from client.core.storage import ProfileStore

REPO = Path(__file__).parents[2]
HOLDER = (
    "import sys; from pathlib import Path; from client.core.storage import ProfileStore;"
    "store = ProfileStore(Path(sys.argv[1]), encrypt=False); print('held', flush=True);"
    "sys.stdin.read()"
)


def test_a_second_process_is_refused_until_the_first_ends(tmp_path):
    folder = tmp_path / "p"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ProfileInUse) as refused:
            ProfileStore(folder, encrypt=False)
        assert refused.value.owner == holder.pid
        assert f"already open in another Ariadne (process {holder.pid})" in str(refused.value)
        assert isinstance(refused.value, ProfileLocked)  # the GUI explains it like the others
    finally:
        holder.communicate("", timeout=30)  # the holder ends: the kernel drops its lock
    store = ProfileStore(folder, encrypt=False)
    store.close()


def test_closing_the_store_releases_the_profile(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    with pytest.raises(ProfileInUse):
        ProfileStore(tmp_path, encrypt=False)
    store.close()
    again = ProfileStore(tmp_path, encrypt=False)
    again.close()
