#!/usr/bin/env python3
"""Holds idle HTTP keep-alive connections for bench/parts/http.sh.

  hold_http.py PORT COUNT   open COUNT connections to 127.0.0.1:PORT, send
                            one GET on each and read its answer, print
                            "ready", keep them open until stdin closes
"""
import asyncio
import sys


async def one(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /?n=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return writer


async def hold(port, count):
    # A few at a time: a burst of connects would overflow the listen backlog.
    conns = []
    for start in range(0, count, 50):
        conns += await asyncio.gather(*(one(port) for _ in range(min(50, count - start))))
    print("ready", len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for writer in conns:
        writer.close()


if __name__ == "__main__":
    asyncio.run(hold(int(sys.argv[1]), int(sys.argv[2])))
