#!/usr/bin/env python3
"""Holds idle connections for the echo benchmark (bench/parts/echo.sh).

  hold_idle.py PORT COUNT   open COUNT idle connections to 127.0.0.1:PORT,
                            print "ready", keep them until stdin closes

(The round-trip load itself comes from examples/echo_load.rs.)
"""
import asyncio
import sys


async def hold(port, count):
    # One at a time: a burst of connects would overflow a small listen backlog.
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for _, writer in conns:
        writer.close()


if __name__ == "__main__":
    asyncio.run(hold(int(sys.argv[1]), int(sys.argv[2])))
