"""Rate limits: token buckets, buckets shared per account, and the failed-login throttle.

A :class:`TokenBucket` belongs to one connection (frames per second). What must not refill by
reconnecting — pre-key bundles handed out, vault calls, password guesses — is kept per account
or per source address in the relay process, by :class:`KeyedBuckets` and :class:`LoginThrottle`.
All take an injectable clock so that tests can idle them without sleeping.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def take(self, cost: float = 1.0) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True


class KeyedBuckets:
    """One bucket per key, shared by every connection of the relay process. At most ``max_keys``
    are kept: the least recently used goes first (a forgotten bucket comes back full, which is
    what an idle one would be anyway)."""

    def __init__(
        self, rate: float, burst: float, clock: Clock = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, cost: float = 1.0) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(cost)


class LoginThrottle:
    """Failed password logins per key (an account, a source address). The first ``free``
    failures cost nothing; each further one makes the key wait ``first`` seconds, doubling up to
    ``longest``. While it waits, a login for that key is refused before its password is hashed.
    A key with no failure for ``forget_after`` seconds starts afresh; at most ``max_keys`` are
    kept, the oldest failure forgotten first."""

    def __init__(
        self,
        free: int,
        first: float,
        longest: float,
        forget_after: float = 3600.0,
        clock: Clock = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.free = free
        self.first = first
        self.longest = longest
        self.forget_after = forget_after
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # count, last

    def _entry(self, key: str, now: float) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, now))
        if now - last > self.forget_after:
            self._failures.pop(key, None)
            return 0, now
        return count, last

    def _delay(self, count: int) -> float:
        if count <= self.free:
            return 0.0
        return min(self.longest, self.first * 2.0 ** (count - self.free - 1))

    def wait(self, key: str) -> float:
        """Seconds before a login for ``key`` is checked again (0: check it now)."""
        now = self._clock()
        count, last = self._entry(key, now)
        return max(0.0, last + self._delay(count) - now) if count else 0.0

    def failed(self, key: str) -> None:
        now = self._clock()
        count, _ = self._entry(key, now)
        self._failures.pop(key, None)
        self._failures[key] = (count + 1, now)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
