"""The relay's rate limiters, on an injected clock: bursts, refills, idling, and the failed-login
throttle's growing waits."""

from __future__ import annotations

from relay.limits import KeyedBuckets, LoginThrottle, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def granted(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.take() for _ in range(attempts))


def test_a_bucket_never_grants_more_than_its_burst_after_idling():
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=5.0, clock=clock)
    assert granted(bucket, 10) == 5
    for idle in (0.0, 1.0, 3600.0, 1e9):
        clock.now += idle
        assert granted(bucket, 100) == min(5, int(idle * 2))
    clock.now += 1.5  # refills at its rate: three tokens
    assert granted(bucket, 10) == 3


def test_a_bucket_refuses_a_cost_above_what_it_holds_and_keeps_the_tokens():
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=4.0, clock=clock)
    assert not bucket.take(5)
    assert bucket.take(4)
    assert not bucket.take(1)


def test_keyed_buckets_are_one_per_key_and_forget_the_least_recently_used():
    clock = Clock()
    buckets = KeyedBuckets(rate=0.0, burst=2.0, clock=clock, max_keys=2)
    assert buckets.take("alice") and buckets.take("alice") and not buckets.take("alice")
    assert buckets.take("bob")
    assert not buckets.take("alice")  # still empty: bob did not refill it
    buckets.take("carol")  # three keys: bob, the least recently used, is forgotten
    assert buckets.take("alice") is False
    assert buckets.take("bob") and buckets.take("bob")  # a forgotten bucket comes back full


def test_login_waits_double_after_the_free_failures_and_a_success_resets_them():
    clock = Clock()
    throttle = LoginThrottle(free=2, first=1.0, longest=5.0, forget_after=600.0, clock=clock)
    waits = []
    for _ in range(6):
        assert throttle.wait("alice") == 0.0
        throttle.failed("alice")
        waits.append(throttle.wait("alice"))
        clock.now += waits[-1]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 5.0]
    assert throttle.wait("bob") == 0.0  # per key
    throttle.succeeded("alice")
    throttle.failed("alice")
    assert throttle.wait("alice") == 0.0


def test_login_failures_are_forgotten_after_a_quiet_while():
    clock = Clock()
    throttle = LoginThrottle(free=1, first=10.0, longest=60.0, forget_after=600.0, clock=clock)
    throttle.failed("alice")
    throttle.failed("alice")
    assert throttle.wait("alice") == 10.0
    clock.now += 601.0
    assert throttle.wait("alice") == 0.0
    throttle.failed("alice")
    assert throttle.wait("alice") == 0.0  # counting starts afresh
