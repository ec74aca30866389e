#!/usr/bin/env python3
"""Load generator for the echo benchmark (bench/parts/echo.sh).

  echo_load.py rate PORT CLIENTS SECONDS   round trips per second, CLIENTS at once
  echo_load.py hold PORT COUNT             open COUNT idle connections, print
                                           "ready", keep them until stdin closes

One asyncio loop drives every client, so the generator itself stays light
and the same for every server it is pointed at.
"""
import asyncio
import sys
import time

MESSAGE = b"x" * 31 + b"\n"


async def client(reader, writer, deadline, counts):
    trips = 0
    while time.monotonic() < deadline:
        writer.write(MESSAGE)
        await reader.readexactly(len(MESSAGE))
        trips += 1
    counts.append(trips)
    writer.close()


async def rate(port, clients, seconds):
    # Connect one at a time before timing: a burst of connects would overflow
    # socat's default listen backlog (5) and measure that instead of echo.
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    counts = []
    start = time.monotonic()
    await asyncio.gather(*(client(r, w, start + seconds, counts) for r, w in conns))
    print(f"{sum(counts) / (time.monotonic() - start):.0f}")


async def hold(port, count):
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for _, writer in conns:
        writer.close()


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "rate":
        asyncio.run(rate(port, int(sys.argv[3]), float(sys.argv[4])))
    else:
        asyncio.run(hold(port, int(sys.argv[3])))
