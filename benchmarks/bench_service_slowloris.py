"""Slowloris against ``simrouter serve``: how many connections that drip their
header block are still open after a while.

Starts ``python -m simrouter serve --port 0`` (whatever ``simrouter`` the
interpreter imports: set PYTHONPATH to measure another tree), opens
``--connections`` connections that each send a request line and then one
header byte every ``--drip`` seconds, never finishing the header block, and
after ``--after`` seconds counts those the server has not closed::

    .venv/bin/python benchmarks/bench_service_slowloris.py                 # this tree
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/bench_service_slowloris.py
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time


async def drip(host: str, port: int, interval: float, until: float, closed_at: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    try:
        writer.write(b"POST /submit HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while time.monotonic() < until:
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(1), interval)
                if data == b"":
                    closed_at.append(time.monotonic() - started)
                    return
            except asyncio.TimeoutError:
                writer.write(b"a")
    except (ConnectionError, OSError):
        closed_at.append(time.monotonic() - started)
    finally:
        writer.close()


async def attack(host: str, port: int, connections: int, interval: float, after: float) -> list:
    closed_at: list = []
    until = time.monotonic() + after
    await asyncio.gather(*(drip(host, port, interval, until, closed_at) for _ in range(connections)))
    return closed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--drip", type=float, default=2.0, help="seconds between header bytes (default 2)")
    parser.add_argument("--after", type=float, default=30.0, help="seconds to keep dripping (default 30)")
    parser.add_argument("serve_args", nargs="*", help="extra `simrouter serve` arguments, after --")
    args = parser.parse_args()
    command = [sys.executable, "-m", "simrouter", "serve", "--port", "0", *args.serve_args]
    # Not from this folder: `-m` would import the simrouter beside it first, whatever PYTHONPATH says.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tempfile.gettempdir())
    try:
        line = process.stdout.readline()
        url = line.split("listening on ", 1)[1].split()[0]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        closed = asyncio.run(attack(host, int(port), args.connections, args.drip, args.after))
    finally:
        process.terminate()
        process.wait(10)
    still_open = args.connections - len(closed)
    when = f"; closed after {min(closed):.1f}-{max(closed):.1f} s" if closed else ""
    print(f"{still_open} of {args.connections} slowloris connections still open after {args.after:g} s{when}")


if __name__ == "__main__":
    main()
