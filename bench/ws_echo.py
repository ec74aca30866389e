#!/usr/bin/env python3
"""Baseline for bench/parts/websocket.sh: a python3-websockets echo server.

  ws_echo.py PORT    listen on 127.0.0.1:PORT (0 picks one, printed)

What a user would otherwise start for a WebSocket echo: websockets' own
asyncio server, its handler the one-line echo loop of its documentation.
"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    async with websockets.serve(echo, "127.0.0.1", port, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
