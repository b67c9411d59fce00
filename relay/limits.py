"""Every limit and quota of the relay: the settings (:class:`Limits`), the buckets and throttles
that enforce them, and the counters shared by all connections (:class:`SharedLimits`).

A :class:`TokenBucket` belongs to one connection (frames per second). What must not refill by
reconnecting — pre-key bundles handed out, vault calls, password guesses — is kept per account
or per source address in the relay process, by :class:`KeyedBuckets` and :class:`LoginThrottle`.
All take an injectable clock so that tests can idle them without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class Limits:
    """Every limit of the relay, in one place. Frames per connection: beyond the rate they get
    ``rate_limited``; a connection that keeps at it, or sends ``max_bad_frames`` undecodable
    frames, is closed. Everything else is kept per account (or per source address) for the whole
    relay process, so reconnecting refills nothing; each refusal names its limit in an error
    code (PROTOCOL.md §3, "Limits")."""

    frames_per_second: float = 2000.0
    frame_burst: float = 4000.0
    # Bundles asked for, per requesting account (beyond: ``rate_limited``).
    bundle_fetches_per_second: float = 2.0
    bundle_fetch_burst: float = 60.0
    # One-time pre-keys handed out per target account; beyond, bundles go without one (the
    # session still starts, on the signed pre-key alone) so nobody can drain them.
    pre_keys_per_second: float = 1.0
    pre_key_burst: float = 40.0
    vault_calls_per_second: float = 1.0
    vault_call_burst: float = 20.0
    max_bad_frames: int = 20
    max_rate_violations: int = 200
    login_timeout: float = 10.0
    delivery_page: int = 256
    live_backlog: int = 1024
    # Failed password logins: free ones per account / per source address, then a wait that
    # doubles from the first to the longest (``login_throttled``, with the seconds to wait).
    free_login_failures_per_account: int = 5
    free_login_failures_per_source: int = 20
    login_wait_first: float = 1.0
    login_wait_longest: float = 300.0
    concurrent_password_hashes: int = 2  # Argon2id runs at most this many at once
    # Quotas (``mailbox_full``, ``queue_full``, ``too_many_pending``, ``busy``).
    mailbox_bytes: int = 256 * 1024 * 1024  # per account
    queue_bytes: int = 64 * 1024 * 1024  # per device
    pending_devices: int = 5  # per account
    pending_device_seconds: int = 7 * 24 * 3600  # an unapproved device is forgotten after this
    unauthenticated_connections: int = 256  # connections that have not logged in yet
    unauthenticated_per_source: int = 16  # of those, from one address
    # Attachments (``blob_quota``): bytes of the blobs an account uploaded that are still held;
    # an upload not finished in a day goes, and every blob after ``blob_seconds``.
    blob_bytes: int = 2 * 1024 * 1024 * 1024  # per account
    unfinished_upload_seconds: int = 24 * 3600
    blob_seconds: int = 90 * 24 * 3600


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
    kept, the oldest failure forgotten first.

    A guess is counted (``failed``) when it is let through, before its password is checked, and
    taken back (``uncounted``, ``succeeded``) if it was right: guesses in flight together are
    each counted against the ones before them, so exactly ``free`` + 1 are checked before the
    first wait, however many arrive at once (a correct login in flight counts until answered)."""

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

    def answered(self, key: str) -> None:
        """A guess counted by ``failed`` before its check was wrong: the wait runs from now,
        when the answer is given (a check takes a while), not from when it was counted."""
        if key in self._failures:
            self._failures[key] = (self._failures[key][0], self._clock())

    def uncounted(self, key: str) -> None:
        """A guess counted by ``failed`` before its check was right: it was no failure."""
        count, last = self._failures.get(key, (0, 0.0))
        if count > 1:
            self._failures[key] = (count - 1, last)
        else:
            self._failures.pop(key, None)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class SharedLimits:
    """What the relay counts across all its connections: a new connection starts with what the
    account (or the source address) has left."""

    def __init__(self, limits: Limits) -> None:
        self.bundle_fetches = KeyedBuckets(
            limits.bundle_fetches_per_second, limits.bundle_fetch_burst
        )
        self.pre_keys_handed_out = KeyedBuckets(limits.pre_keys_per_second, limits.pre_key_burst)
        self.vault_calls = KeyedBuckets(limits.vault_calls_per_second, limits.vault_call_burst)
        self.account_logins = LoginThrottle(
            limits.free_login_failures_per_account,
            limits.login_wait_first,
            limits.login_wait_longest,
        )
        self.source_logins = LoginThrottle(
            limits.free_login_failures_per_source,
            limits.login_wait_first,
            limits.login_wait_longest,
        )
        self.password_hashing = asyncio.Semaphore(limits.concurrent_password_hashes)
        self.unauthenticated = 0
        self.unauthenticated_from: Counter[str] = Counter()
