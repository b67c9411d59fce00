"""The long chaos run (the short one is ``tests/e2e/test_chaos.py``): several seeded runs of a
relay and three devices in their own processes, SIGKILLed at random moments and at code points
while they write to each other, each drained and checked (``tests/e2e/chaos.py``). Prints one
line per run and the totals; exits non-zero if any run found a problem.

    python tests/benchmarks/chaos.py [--runs 6] [--messages 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from tests.e2e.chaos import ChaosPlan, run_chaos

KINDS = ("relay at random", "relay at a code point", "device at random", "device at a code point")


async def main(runs: int, messages: int, first_seed: int) -> int:
    print(
        f"Chaos: {runs} runs, a relay and 3 devices in their own processes, {messages} messages"
        f" per device ({3 * messages} per run), {os.cpu_count()} cores"
    )
    header = ["seed", "messages", *KINDS, "chaos s", "drain s", "result"]
    print(" | ".join(header))
    totals: Counter[str] = Counter()
    failed = 0
    started = time.monotonic()
    for seed in range(first_seed, first_seed + runs):
        with tempfile.TemporaryDirectory(prefix="chaos-") as root:
            plan = ChaosPlan(seed=seed, messages=messages, seconds=600.0, drain_seconds=120.0)
            result = await run_chaos(Path(root), plan)
        totals.update(result.kills)
        totals["messages"] += result.messages
        failed += bool(result.problems)
        verdict = "ok" if not result.problems else "; ".join(result.problems[:3])
        kills = [str(result.kills[k]) for k in KINDS]
        print(
            " | ".join(
                [
                    str(seed),
                    str(result.messages),
                    *kills,
                    f"{result.chaos_seconds:.0f}",
                    f"{result.drain_seconds:.1f}",
                    verdict,
                ]
            ),
            flush=True,
        )
    print(
        f"total: {totals['messages']} messages, {sum(totals[k] for k in KINDS)} SIGKILLs ("
        + ", ".join(f"{totals[k]} {k}" for k in KINDS)
        + f"), {failed} runs with a problem, {time.monotonic() - started:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.runs, args.messages, args.seed)))
