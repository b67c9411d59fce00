"""``ariadne``: the client's command line.

``ariadne chat-demo --headless`` runs the scripted demo in the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ariadne")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("chat-demo", help="start a relay and let Alice and Bob talk")
    demo.add_argument(
        "--headless",
        action="store_true",
        help="narrate in the terminal (the desktop demo arrives with the GUI)",
    )
    demo.add_argument("--workdir", type=Path, help="keep profiles and relay data here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.command == "chat-demo":
        from client.demo import run_headless

        return asyncio.run(run_headless(args.workdir))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
