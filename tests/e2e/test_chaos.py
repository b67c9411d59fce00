"""The chaos run, short: a relay and three devices in their own processes, killed at random
seeded moments and at code points (before an Ack, before a Send, after Accepted; the relay before
a commit and after one, before answering), then drained. Every device holds every message once,
in the same order, each sender's in its own order, with every status final. The long run is
``tests/benchmarks/chaos.py``."""

from __future__ import annotations

from tests.e2e.chaos import ChaosPlan, run_chaos


async def test_chaos_short_run(tmp_path):
    result = await run_chaos(tmp_path, ChaosPlan(seed=17, messages=40, seconds=40.0))
    assert not result.problems, result.problems
    assert result.kills["relay at random"] >= 1 and result.kills["device at random"] >= 3, (
        result.kills
    )
