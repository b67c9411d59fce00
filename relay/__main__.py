"""``ariadne-relay``: run the relay until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from relay.server import start_relay


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ariadne-relay", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, default=Path("relay-data"))
    parser.add_argument(
        "--database",
        metavar="postgresql://…",
        help="a PostgreSQL database shared with the other relay nodes (default: SQLite in"
        " --data-dir, one node)",
    )
    parser.add_argument(
        "--vault-dir",
        type=Path,
        help="where the PIN vault's key is (default: DATA_DIR/vault); nodes sharing a database"
        " must be given the same key",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(_serve(args.host, args.port, args.data_dir, args.database, args.vault_dir))


async def _serve(
    host: str, port: int, data_dir: Path, database: str | None, vault_dir: Path | None
) -> None:
    relay, server = await start_relay(host, port, data_dir, database=database, vault_dir=vault_dir)
    for sock in server.sockets:
        # The demo and the tests read this line to learn the port when started with --port 0.
        print(
            f"ariadne-relay listening on ws://{sock.getsockname()[0]}:{sock.getsockname()[1]}",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    relay.close()


if __name__ == "__main__":
    main()
