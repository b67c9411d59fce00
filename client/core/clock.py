"""The relay's clock, as this device reads it: its own clock plus an offset measured against the
relay at every login (PROTOCOL.md §10 "Whose clock decides").

Disappearing messages expire by this clock on every device, so two devices whose own clocks
disagree by an hour still delete a message at the same moment; the offset is kept in the profile,
so a device that starts offline deletes what expired while it was closed before showing anything.

The relay is not trusted with more than that: the offset is held within ``max_skew_ms`` of this
device's own clock. A relay claiming it is a week later would otherwise make every device delete
its disappearing messages at once (a deletion nothing undoes), and one claiming the far future
would stamp ids past their 48 bits of milliseconds. Within the bound, a device whose clock is
wrong by an hour still deletes on time; beyond it the relay can shift expiry by the bound, no more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("ariadne.client.clock")

# How far the relay's clock may be from this device's own before it is no longer believed.
MAX_SKEW_MS = 2 * 3_600_000


def system_ms() -> int:
    return time.time_ns() // 1_000_000


class RelayClock:
    def __init__(
        self,
        local_ms: Callable[[], int] | None = None,
        offset_ms: int = 0,
        max_skew_ms: int = MAX_SKEW_MS,
    ) -> None:
        self._local_ms = local_ms  # this device's own clock, if not the system's
        self.offset_ms = offset_ms  # relay − local
        self.max_skew_ms = max_skew_ms

    def local_ms(self) -> int:
        return self._local_ms() if self._local_ms is not None else system_ms()

    def set_local(self, local_ms: Callable[[], int]) -> None:
        """Read this device's own clock from ``local_ms`` (a device whose clock is wrong)."""
        self._local_ms = local_ms

    def now_ms(self) -> int:
        return self.local_ms() + self.offset_ms

    def observe(self, relay_us: int, asked_ms: int, answered_ms: int) -> int:
        """Take the relay's time ``relay_us`` read between ``asked_ms`` and ``answered_ms`` (local
        clock) as the relay's clock at the midpoint, held within ``max_skew_ms`` of this
        device's clock; returns the new offset."""
        offset = relay_us // 1000 - (asked_ms + answered_ms) // 2
        self.offset_ms = max(-self.max_skew_ms, min(offset, self.max_skew_ms))
        if self.offset_ms != offset:
            log.warning(
                "the relay's clock is %d s from this device's: not believed", offset // 1000
            )
        return self.offset_ms
