"""``ariadne``: the client's command line.

- ``ariadne [--profile DIR] [--relay URL]``: the desktop client for one device profile.
- ``ariadne demo [--laptop]``: a relay and two windows, Alice and Bob, side by side; with
  ``--laptop`` also Alice's laptop, to approve and then revoke a device in front of an audience.
- ``ariadne demo --hostile``: the same two windows and a "Relay operator" window whose buttons
  make the relay attack them, to watch the clients catch each attack.
- ``ariadne chat-demo --headless``: the scripted demo, narrated in the terminal.
- ``ariadne chat-demo --hostile``: every attack in turn, and a table of what the clients did
  (exit status 1 if they missed one).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ariadne")
    parser.add_argument("--profile", type=Path, default=Path.home() / ".ariadne" / "profile")
    parser.add_argument("--relay", help="relay URL, e.g. ws://127.0.0.1:8765")
    parser.add_argument("--lifetime", type=float, help=argparse.SUPPRESS)  # for tests
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="start a relay and open Alice's and Bob's windows")
    demo.add_argument("--data-dir", type=Path, default=Path.home() / ".ariadne" / "demo")
    demo.add_argument(
        "--laptop",
        action="store_true",
        help="also open Alice's laptop, to approve it (compare codes) and then revoke it",
    )
    demo.add_argument("--lifetime", type=float, help=argparse.SUPPRESS)
    chat = commands.add_parser("chat-demo", help="a scripted conversation in the terminal")
    chat.add_argument("--headless", action="store_true", help="narrate in the terminal")
    chat.add_argument("--workdir", type=Path, help="keep profiles and relay data here")
    chat.add_argument(
        "--hostile",
        action="store_true",
        help="the relay attacks, each attack in turn; exits 1 if the clients miss one",
    )
    demo.add_argument(
        "--hostile", action="store_true", help="also open the 'Relay operator' window"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.command == "chat-demo" and args.hostile:
        from client.hostile_attacks import run_headless as run_hostile

        return asyncio.run(run_hostile(args.workdir))
    if args.command == "chat-demo":
        from client.demo import run_headless

        return asyncio.run(run_headless(args.workdir))
    from client.gui.app import demo as run_demo
    from client.gui.app import run_qt, single

    if args.command == "demo" and args.hostile:
        from client.gui.operator_window import hostile_demo

        return run_qt(lambda: hostile_demo(args.lifetime))
    if args.command == "demo":
        return run_qt(lambda: run_demo(args.data_dir, args.lifetime, args.laptop))
    return run_qt(lambda: single(args.profile, args.relay, args.lifetime))


if __name__ == "__main__":
    raise SystemExit(main())
