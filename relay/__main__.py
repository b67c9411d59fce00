"""``ariadne-relay``: run the relay until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from relay.server import start_relay

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    parser.add_argument(
        "--attack-layer",
        action="store_true",
        help="DEMO ONLY: misbehave on the commands of the process that started this relay,"
        " written to its standard input (ariadne demo --hostile)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(
        _serve(
            args.host, args.port, args.data_dir, args.database, args.vault_dir, args.attack_layer
        )
    )


async def _serve(
    host: str,
    port: int,
    data_dir: Path,
    database: str | None,
    vault_dir: Path | None,
    attack_layer: bool = False,
) -> None:
    relay, server = await start_relay(host, port, data_dir, database=database, vault_dir=vault_dir)
    operator = None
    if attack_layer:
        from relay.attacks import AttackLayer, serve_operator
        from shared.operator import encode

        layer = AttackLayer(relay, lambda report: _write_line(encode(report)))
        operator = asyncio.create_task(serve_operator(layer, await _stdin()))
    for sock in server.sockets:
        # The demo and the tests read this line to learn the port when started with --port 0.
        print(
            f"ariadne-relay listening on ws://{sock.getsockname()[0]}:{sock.getsockname()[1]}",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Held back while the handlers change: between remove_signal_handler and signal.signal the
    # signal's default action (death, or KeyboardInterrupt) is in place.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    for sig in STOP_SIGNALS:
        # Already stopping: another request (Ctrl+C reaches the whole process group, then the
        # demo asks its relay again) changes nothing. Ignored, it cannot land in the moment the
        # closing loop has closed its wake-up pipe but still holds the signal, which Python
        # reports as a traceback.
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if operator is not None:
        operator.cancel()
    server.close()
    await server.wait_closed()
    relay.close()


def _write_line(line: bytes) -> None:
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()


async def _stdin() -> asyncio.StreamReader:
    """The operator's pipe: standard input, read without blocking the event loop."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


if __name__ == "__main__":
    main()
