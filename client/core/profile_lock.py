"""One process per profile: an exclusive lock on a file in the profile's folder.

Two Ariadne processes on one profile would both log in as the same device: the relay keeps one
connection per device, so each would push the other off every couple of seconds, and both would
write the same ratchets and queues. The lock is an ``flock`` on ``ariadne.lock``, held for as long
as the profile's store is open. The kernel releases it when the process ends, however it ends
(a crash leaves no stale lock to clean up). The file holds the owner's process id, for the
message the second one shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from client.core.at_rest import FILE_MODE, ProfileLocked, private_folder

LOCK_NAME = "ariadne.lock"


class ProfileInUse(ProfileLocked):
    """Another process has this profile open."""

    def __init__(self, directory: Path, owner: int | None) -> None:
        self.owner = owner
        which = f" (process {owner})" if owner else ""
        super().__init__(
            f"This profile is already open in another Ariadne{which}. Use that window, or close "
            "it first: two programs on one profile would push each other off the relay."
        )


def hold(directory: Path) -> IO[str]:
    """Take the profile's lock (making its private folder if needed) and return the open file
    that holds it; closing the file releases it. Raises :class:`ProfileInUse`."""
    private_folder(directory)
    path = directory / LOCK_NAME
    file = open(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE), "r+", encoding="ascii")  # noqa: SIM115
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _owner(file)
        file.close()
        raise ProfileInUse(directory, owner) from None
    file.seek(0)
    file.truncate()
    file.write(str(os.getpid()))
    file.flush()
    return file


def _owner(file: IO[str]) -> int | None:
    with contextlib.suppress(ValueError, OSError):
        return int(file.read().strip())
    return None
