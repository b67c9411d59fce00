"""The failed-login throttle keeps a bounded number of keys (accounts, source addresses): an
attacker who fails logins from ever new addresses or for ever new usernames grows the relay's
memory by at most ``max_keys`` entries, the oldest failure forgotten first. On an injected clock."""

from __future__ import annotations

from relay.limits import LoginThrottle
from tests.relay.test_ratelimit import Clock


def test_the_throttle_forgets_the_oldest_failures_beyond_its_bound():
    clock = Clock()
    throttle = LoginThrottle(free=0, first=10.0, longest=60.0, clock=clock, max_keys=2)
    for key in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        throttle.failed(key)
        clock.now += 1.0
    assert throttle.wait("10.0.0.1") == 0.0  # the oldest of three: forgotten
    assert throttle.wait("10.0.0.2") > 0.0 and throttle.wait("10.0.0.3") > 0.0
    throttle.failed("10.0.0.2")  # failing again makes it the newest
    throttle.failed("10.0.0.4")
    assert throttle.wait("10.0.0.3") == 0.0
    assert throttle.wait("10.0.0.2") > 0.0 and throttle.wait("10.0.0.4") > 0.0
